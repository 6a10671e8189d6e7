//! End-to-end tests of echoloop live in `tests/`; this library holds their shared helpers.
#![deny(missing_docs)]
