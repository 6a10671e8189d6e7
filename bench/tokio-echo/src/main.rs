//! `tokio-echo [--multi-thread] [--buffer BYTES] [--udp] [ADDR:PORT]`: the tokio echo
//! server, as its tutorial writes it: one task per connection, read into the task's
//! buffer, then `write_all`. By default a current-thread runtime (one CPU, like a select
//! loop) and a 64 KiB buffer; `--multi-thread` runs tokio's default multi-thread runtime (a
//! worker per CPU), `--buffer 16384` is the row matched to echoloop's queue. Prints
//! `listening on ADDR` once ready, like `echoloop serve`; SIGTERM or SIGINT: exit 0.
//!
//! `--udp` serves UDP echo instead, as tokio's own UDP echo example does: one `UdpSocket`,
//! `recv_from` into the buffer, `send_to` the sender, and prints `listening on udp ADDR`
//! as `echoloop serve --udp` does. No guards: it answers every datagram. Benchmark-only.

use std::io::{self, Write};
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};

struct Args {
    addr: String,
    multi_thread: bool,
    buffer: usize,
    udp: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:0".into(),
        multi_thread: false,
        buffer: 64 * 1024,
        udp: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--multi-thread" => args.multi_thread = true,
            "--udp" => args.udp = true,
            "--buffer" => {
                args.buffer = it
                    .next()
                    .and_then(|b| b.parse().ok())
                    .filter(|&b| b > 0)
                    .ok_or("--buffer takes a positive number of bytes")?;
            }
            _ if a.starts_with('-') => return Err(format!("unexpected argument '{a}'")),
            _ => args.addr = a,
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tokio-echo: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = if args.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let result = builder
        .enable_io()
        .build()
        .and_then(|rt| rt.block_on(serve(&args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &Args) -> io::Result<()> {
    if args.udp {
        return serve_udp(args).await;
    }
    let listener = TcpListener::bind(&args.addr).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            accepted = listener.accept() => {
                // EMFILE and the like: this client is not served, the server goes on.
                let Ok((sock, _)) = accepted else { continue };
                if sock.set_nodelay(true).is_ok() {
                    tokio::spawn(echo(sock, args.buffer));
                }
            }
        }
    }
}

async fn echo(mut sock: TcpStream, buffer: usize) {
    let mut buf = vec![0u8; buffer];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if sock.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve_udp(args: &Args) -> io::Result<()> {
    let sock = UdpSocket::bind(&args.addr).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    println!("listening on udp {}", sock.local_addr()?);
    io::stdout().flush()?;
    let mut buf = vec![0u8; args.buffer];
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            received = sock.recv_from(&mut buf) => {
                // An ICMP error of an earlier send (ECONNREFUSED) and the like: go on.
                let Ok((n, from)) = received else { continue };
                let _ = sock.send_to(&buf[..n], from).await;
            }
        }
    }
}
