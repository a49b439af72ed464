//! A header block received: decoded (always, so HPACK stays in step with the peer), then checked
//! against the stream it opens, answers or ends.

use super::{Connection, ConnectionError, Event, HeadKind, Role, Stream};
use crate::frame::Reason;
use crate::hpack::DecodeError;

impl Connection {
    pub(super) fn on_block(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: bytes::Bytes,
    ) -> Result<(), ConnectionError> {
        self.fields.clear();
        let fields = &mut self.fields;
        // Over the limit the head is refused for its stream; over four times the limit (an HPACK
        // bomb: a few bytes referring to a large entry again and again) the connection is ended.
        let limit = self.config.max_header_list_size as usize;
        let mut size = 0;
        let decoded = self.decoder.decode(&block, 4 * limit, |field| {
            size += field.name.len() + field.value.len() + 32;
            if size <= limit {
                fields.push(field);
            }
        });
        match decoded {
            Ok(()) => {}
            Err(DecodeError::ListTooLarge) => {
                return Err(self.fail(
                    Reason::ENHANCE_YOUR_CALM,
                    "a header block decoding past four times the limit (an HPACK bomb)",
                ));
            }
            Err(_) => {
                return Err(self.fail(Reason::COMPRESSION_ERROR, "a header block did not decode"));
            }
        }
        let too_large = size > limit;
        let new_remote = (stream % 2 == 1) == (self.role == Role::Server);
        if !self.streams.contains_key(&stream) {
            if !new_remote {
                // An answer for a stream this side gave up, or one never opened.
                if self.is_idle(stream) {
                    return Err(self.fail(Reason::PROTOCOL_ERROR, "HEADERS on an idle stream"));
                }
                return Ok(());
            }
            if self.role == Role::Client {
                return Err(self.fail(Reason::PROTOCOL_ERROR, "a stream opened by the server"));
            }
            if stream <= self.last_remote_stream {
                if self.reset_lately(stream) {
                    // Trailers of a stream this side reset, sent before the peer knew: dropped.
                    return Ok(());
                }
                return Err(self.fail(
                    Reason::PROTOCOL_ERROR,
                    "HEADERS on a closed stream, or a stream number that went down",
                ));
            }
            self.last_remote_stream = stream;
            if self.going_away.is_some() || self.remote_open >= self.config.max_concurrent_streams {
                self.write_reset(stream, Reason::REFUSED_STREAM);
                return Ok(());
            }
            self.remote_open += 1;
            let state = Stream::new(self.peer_initial_window, self.config.stream_window, true);
            self.streams.insert(stream, state);
        }
        let Some(state) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        if state.recv_closed {
            self.reset_for(stream, Reason::STREAM_CLOSED);
            return Ok(());
        }
        if too_large {
            self.fields.clear();
            self.events.push_back(Event::HeadTooLarge { stream });
            return Ok(());
        }
        let kind = if state.head_received {
            if !end_stream {
                self.reset_for(stream, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            HeadKind::Trailers
        } else if self.role == Role::Client
            && self
                .fields
                .first()
                .is_some_and(|f| f.name.as_ref() == b":status" && f.value.first() == Some(&b'1'))
        {
            HeadKind::Interim
        } else {
            state.head_received = true;
            // An answer to HEAD, a 204 or a 304 has no content whatever its length says (RFC
            // 9113 section 8.1.1).
            let no_content = state.no_content
                || self.fields.first().is_some_and(|f| {
                    f.name.as_ref() == b":status" && matches!(&f.value[..], b"204" | b"304")
                });
            let length = self
                .fields
                .iter()
                .find(|f| f.name.as_ref() == b"content-length")
                .filter(|_| !no_content);
            if let Some(length) = length {
                match std::str::from_utf8(&length.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                {
                    Some(length) => state.expected_length = Some(length),
                    None => {
                        self.reset_for(stream, Reason::PROTOCOL_ERROR);
                        return Ok(());
                    }
                }
            }
            HeadKind::Head
        };
        if state.stop_receiving {
            if end_stream {
                state.recv_closed = true;
                self.close_if_done(stream);
            }
            self.fields.clear();
            return Ok(());
        }
        if end_stream {
            if kind == HeadKind::Interim {
                self.reset_for(stream, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            if state
                .expected_length
                .is_some_and(|l| l != state.received_length)
            {
                self.reset_for(stream, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            state.recv_closed = true;
        }
        self.events.push_back(Event::Headers {
            stream,
            kind,
            end_stream,
        });
        if end_stream {
            self.close_if_done(stream);
        }
        Ok(())
    }
}
