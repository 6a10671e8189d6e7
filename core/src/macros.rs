//! Logging that compiles to `defmt`, to `log`, or to nothing, as smoltcp's `macros.rs` does.
//!
//! Arguments are formatted with `{}`: every type logged implements both `Display` (for
//! `log`) and `defmt::Format`. With neither feature the arguments are only borrowed, so
//! nothing is formatted and no code is generated.

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive: enable one of them");

#[cfg(feature = "log")]
macro_rules! debug {
    ($($arg:tt)*) => { ::log::debug!($($arg)*) };
}

#[cfg(feature = "defmt")]
macro_rules! debug {
    ($($arg:tt)*) => { ::defmt::debug!($($arg)*) };
}

#[cfg(not(any(feature = "log", feature = "defmt")))]
macro_rules! debug {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

pub(crate) use debug;
