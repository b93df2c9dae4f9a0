//! A deliberately rude HTTP/2 client written with raw frames, for what the `h2` crate
//! will not do: ignore the server's stream limit and never send a request body.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const REFUSED_STREAM: u32 = 0x7;

#[derive(Debug)]
pub(crate) enum Event {
    Settings(Vec<(u16, u32)>),
    PingAck,
    Reset { code: u32 },
    GoAway { code: u32 },
    Closed,
}

pub(crate) struct RawH2 {
    stream: UnixStream,
    events: mpsc::Receiver<Event>,
    next_stream: u32,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, if it sent one.
    pub(crate) max_concurrent_streams: Option<u32>,
    /// Streams the server refused, and whether it sent GOAWAY or closed the connection.
    pub(crate) refused: usize,
    pub(crate) goaway: Option<u32>,
    pub(crate) closed: bool,
}

impl RawH2 {
    /// Connects and completes the HTTP/2 handshake: our preface and SETTINGS, the
    /// server's SETTINGS, our acknowledgement.
    pub(crate) fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).expect("connect");
        let reader = stream.try_clone().expect("clone");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || read_frames(reader, tx));
        let mut h2 = Self {
            stream,
            events,
            next_stream: 1,
            max_concurrent_streams: None,
            refused: 0,
            goaway: None,
            closed: false,
        };
        h2.write(PREFACE);
        h2.write(&frame(SETTINGS, 0, 0, &[]));
        loop {
            match h2.next_event() {
                Event::Settings(settings) => {
                    h2.max_concurrent_streams = settings
                        .iter()
                        .find(|(id, _)| *id == SETTINGS_MAX_CONCURRENT_STREAMS)
                        .map(|(_, value)| *value);
                    break;
                }
                other => h2.note(other),
            }
        }
        h2.write(&frame(SETTINGS, ACK, 0, &[]));
        h2
    }

    /// Opens `count` Resolve calls, sending their headers and never a body, then waits
    /// until the server has read them all: its answer to a PING sent after them, or
    /// the end of the connection.
    pub(crate) fn open_bodiless_streams(&mut self, count: usize) {
        let block = resolve_headers();
        for _ in 0..count {
            if self.closed {
                break;
            }
            let id = self.next_stream;
            self.next_stream += 2;
            let frame = frame(HEADERS, END_HEADERS, id, &block);
            if self.stream.write_all(&frame).is_err() {
                self.closed = true;
            }
        }
        if !self.closed && self.stream.write_all(&frame(PING, 0, 0, &[7; 8])).is_err() {
            self.closed = true;
        }
        while !self.closed {
            match self.next_event() {
                Event::PingAck => break,
                other => self.note(other),
            }
        }
        // Count the refusals already on their way.
        while let Ok(event) = self.events.try_recv() {
            self.note(event);
        }
    }

    fn next_event(&mut self) -> Event {
        self.events
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon answered nothing for 60 s")
    }

    fn note(&mut self, event: Event) {
        match event {
            Event::Reset { code } if code == REFUSED_STREAM => self.refused += 1,
            Event::GoAway { code } => self.goaway = Some(code),
            Event::Closed => self.closed = true,
            _ => {}
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the daemon");
    }
}

fn read_frames(mut stream: UnixStream, events: mpsc::Sender<Event>) {
    let mut header = [0u8; 9];
    loop {
        if stream.read_exact(&mut header).is_err() {
            let _ = events.send(Event::Closed);
            return;
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let (kind, flags) = (header[3], header[4]);
        let mut payload = vec![0; len];
        if stream.read_exact(&mut payload).is_err() {
            let _ = events.send(Event::Closed);
            return;
        }
        let word = |at: usize| {
            u32::from_be_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        let event = match kind {
            SETTINGS if flags & ACK == 0 => Event::Settings(
                payload
                    .chunks_exact(6)
                    .map(|s| {
                        (
                            u16::from_be_bytes([s[0], s[1]]),
                            u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                        )
                    })
                    .collect(),
            ),
            PING if flags & ACK != 0 => Event::PingAck,
            RST_STREAM => Event::Reset { code: word(0) },
            GOAWAY => Event::GoAway { code: word(4) },
            _ => continue,
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// HPACK for `POST /vaultbridge.v1.Secrets/Resolve` with the gRPC headers, written
/// with the static table and plain literals (no Huffman, no dynamic table).
fn resolve_headers() -> Vec<u8> {
    let literal = |out: &mut Vec<u8>, text: &str| {
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    };
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.push(0x04); // :path, a literal value
    literal(&mut block, "/vaultbridge.v1.Secrets/Resolve");
    block.push(0x01); // :authority
    literal(&mut block, "localhost");
    block.extend_from_slice(&[0x0f, 0x10]); // content-type (static index 31)
    literal(&mut block, "application/grpc");
    block.push(0x00); // a new name: te
    literal(&mut block, "te");
    literal(&mut block, "trailers");
    block
}
