//! `weft_http2::connection::Connection` as a server: everything a peer can send after the
//! client's preface (frames, header blocks, windows, resets, floods).
//!
//! The input is the bytes after the preface, cut where its first byte says (every `first + 1`
//! bytes, so the same frames arrive whole and in pieces). Checks: no panic; every event names a
//! stream the client may open (odd); what the connection writes back is a sequence of well-formed
//! frames; after a connection error the last frame written is `GOAWAY` with the error's code; and
//! the events are the same whichever way the input was cut.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weft_http2::connection::{Config, Connection, ConnectionError, Event, Role};
use weft_http2::frame::{self, Frame};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, frames)) = data.split_first() else {
        return;
    };
    let whole = run(frames, frames.len().max(1));
    let pieces = run(frames, usize::from(cut) + 1);
    assert_eq!(whole.0, pieces.0, "the events depend on how the input was cut");
    assert_eq!(whole.1, pieces.1);
});

/// Events (with each head's fields) and the error, feeding `frames` `step` bytes at a time.
#[allow(clippy::type_complexity)]
fn run(frames: &[u8], step: usize) -> (Vec<(Event, Vec<(Vec<u8>, Vec<u8>)>)>, Option<ConnectionError>) {
    let mut conn = Connection::new(Config {
        role: Role::Server,
        max_concurrent_streams: 8,
        stream_window: 65_535,
        connection_window: 65_535,
        max_header_list_size: 4096,
    });
    let mut input = BytesMut::from(frame::PREFACE);
    let mut events = Vec::new();
    let mut error = None;
    let mut output = BytesMut::new();
    'feed: for piece in frames.chunks(step) {
        input.extend_from_slice(piece);
        loop {
            match conn.receive(&mut input) {
                Ok(Some(event)) => {
                    let stream = match &event {
                        Event::Headers { stream, .. }
                        | Event::HeadTooLarge { stream }
                        | Event::Data { stream, .. }
                        | Event::Reset { stream, .. } => Some(*stream),
                        Event::GoAway { .. } => None,
                    };
                    assert!(stream.is_none_or(|s| s % 2 == 1), "{event:?}");
                    let fields = conn
                        .take_fields()
                        .map(|f| (f.name.to_vec(), f.value.to_vec()))
                        .collect();
                    // What an application does: give the data's window back.
                    if let Event::Data { stream, data, .. } = &event {
                        conn.release(*stream, data.len());
                    }
                    events.push((event, fields));
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
        conn.flush();
        let mut chunks = Vec::new();
        conn.take_output(&mut chunks);
        for chunk in chunks {
            output.extend_from_slice(&chunk);
        }
    }
    conn.flush();
    let mut chunks = Vec::new();
    conn.take_output(&mut chunks);
    for chunk in chunks {
        output.extend_from_slice(&chunk);
    }
    let mut last = None;
    while let Some(frame) =
        frame::decode(&mut output, frame::MAX_MAX_FRAME_SIZE).expect("the connection's own frames")
    {
        last = Some(frame);
    }
    assert!(output.is_empty(), "a partial frame written");
    if let Some(e) = error.filter(|e| !e.by_peer) {
        assert!(
            matches!(last, Some(Frame::GoAway { reason, .. }) if reason == e.reason),
            "{e} but the last frame written is {last:?}"
        );
    }
    (events, error)
}
