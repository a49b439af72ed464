//! What the peer sends: frames checked against the connection's state and turned into events.

use bytes::BytesMut;

use super::{Connection, ConnectionError, Event, PendingBlock, Role};
use crate::frame::{self, Frame, Reason};

/// A header block may come in at most this many `CONTINUATION` frames.
const MAX_CONTINUATIONS: u32 = 32;

impl Connection {
    /// Reads frames from `input` until one makes an event, or `input` holds no whole frame
    /// (`Ok(None)`: read more). After an error nothing more is read: write the output (the
    /// `GOAWAY`) and close.
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ConnectionError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        if let Some(error) = self.closed {
            return Err(error);
        }
        if self.preface_left > 0 {
            let at = frame::PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(input.len());
            if input[..n] != frame::PREFACE[at..at + n] {
                return Err(self.fail(Reason::PROTOCOL_ERROR, "the client's preface is wrong"));
            }
            let _ = input.split_to(n);
            self.preface_left -= n;
            if self.preface_left > 0 {
                return Ok(None);
            }
        }
        loop {
            let frame = match frame::decode(input, frame::DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(e) => match e.stream {
                    Some(stream) if self.block.is_none() => {
                        // Only that stream is reset; the frames after it are read on.
                        self.reset_for(stream, e.reason);
                        match self.events.pop_front() {
                            Some(event) => return Ok(Some(event)),
                            None => continue,
                        }
                    }
                    _ => return Err(self.fail(e.reason, e.what)),
                },
            };
            self.on_frame(frame)?;
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ConnectionError> {
        if !self.peer_settings {
            if !matches!(frame, Frame::Settings(_)) {
                return Err(self.fail(Reason::PROTOCOL_ERROR, "the first frame is not SETTINGS"));
            }
            self.peer_settings = true;
        }
        if let Some(block) = &self.block
            && !matches!(&frame, Frame::Continuation { stream, .. } if *stream == block.stream)
        {
            return Err(self.fail(
                Reason::PROTOCOL_ERROR,
                "a header block's CONTINUATION did not follow it",
            ));
        }
        match frame {
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => {
                if end_headers {
                    return self.on_block(stream, end_stream, fragment);
                }
                let mut fragments = BytesMut::with_capacity(fragment.len() * 2);
                fragments.extend_from_slice(&fragment);
                self.block = Some(PendingBlock {
                    stream,
                    end_stream,
                    fragments,
                    frames: 0,
                });
            }
            Frame::Continuation {
                fragment,
                end_headers,
                ..
            } => {
                let Some(mut block) = self.block.take() else {
                    return Err(self.fail(
                        Reason::PROTOCOL_ERROR,
                        "a CONTINUATION without a header block before it",
                    ));
                };
                block.frames += 1;
                block.fragments.extend_from_slice(&fragment);
                if block.frames > MAX_CONTINUATIONS
                    || block.fragments.len() > 2 * self.config.max_header_list_size as usize
                {
                    return Err(self.fail(
                        Reason::ENHANCE_YOUR_CALM,
                        "a header block in too many CONTINUATION frames or too long",
                    ));
                }
                if end_headers {
                    let fragment = block.fragments.freeze();
                    return self.on_block(block.stream, block.end_stream, fragment);
                }
                self.block = Some(block);
            }
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => self.on_data(stream, data, end_stream, flow_len)?,
            Frame::Reset { stream, reason } => {
                if self.is_idle(stream) {
                    return Err(self.fail(Reason::PROTOCOL_ERROR, "RST_STREAM on an idle stream"));
                }
                if let Some(state) = self.streams.remove(&stream) {
                    self.forget(&state);
                    self.events.push_back(Event::Reset {
                        stream,
                        reason,
                        by_peer: true,
                    });
                }
            }
            Frame::WindowUpdate {
                stream: 0,
                increment,
            } => {
                self.send_window += i64::from(increment);
                if self.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err(self.fail(
                        Reason::FLOW_CONTROL_ERROR,
                        "a WINDOW_UPDATE took the connection's window past 2^31-1",
                    ));
                }
            }
            Frame::WindowUpdate { stream, increment } => {
                let Some(state) = self.streams.get_mut(&stream) else {
                    return Ok(());
                };
                state.send_window += i64::from(increment);
                if state.send_window > i64::from(frame::MAX_WINDOW) {
                    self.reset_for(stream, Reason::FLOW_CONTROL_ERROR);
                } else if !state.ready && (!state.queue.is_empty() || state.end_queued) {
                    state.ready = true;
                    self.ready.push_back(stream);
                }
            }
            Frame::Settings(settings) => self.on_settings(settings)?,
            Frame::SettingsAck => {
                if self.settings_unacked == 0 {
                    return Err(self.fail(Reason::PROTOCOL_ERROR, "an unsolicited SETTINGS ACK"));
                }
                self.settings_unacked -= 1;
            }
            Frame::Ping {
                ack: false,
                payload,
            } => frame::write_ping(&mut self.out, true, payload),
            Frame::Ping { ack: true, .. } => self.pongs += 1,
            Frame::Priority { .. } | Frame::Unknown => {}
            Frame::PushPromise { .. } => {
                return Err(self.fail(Reason::PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)"));
            }
            Frame::GoAway {
                last_stream,
                reason,
                ..
            } => self.on_goaway(last_stream, reason)?,
        }
        Ok(())
    }

    /// A stream number the peer has not used yet (nor this side, for its own streams).
    pub(super) fn is_idle(&self, stream: u32) -> bool {
        let remote = (stream % 2 == 1) == (self.role == Role::Server);
        if remote {
            stream > self.last_remote_stream
        } else {
            stream >= self.next_local_stream
        }
    }

    fn on_data(
        &mut self,
        stream: u32,
        data: bytes::Bytes,
        end_stream: bool,
        flow_len: u32,
    ) -> Result<(), ConnectionError> {
        self.recv_window -= i64::from(flow_len);
        if self.recv_window < 0 {
            return Err(self.fail(
                Reason::FLOW_CONTROL_ERROR,
                "DATA past the connection's window",
            ));
        }
        let padding = flow_len - data.len() as u32;
        let Some(state) = self.streams.get_mut(&stream) else {
            if self.is_idle(stream) {
                return Err(self.fail(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
            }
            // A stream already reset or ended: its data still counted against the connection. The
            // peer may not have known of this side's reset; otherwise it broke a rule (RFC 9113
            // section 5.1, "closed").
            self.release_connection(flow_len);
            if !self.reset_lately(stream) {
                self.write_reset(stream, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        if state.recv_closed || !state.head_received {
            let reason = if state.recv_closed {
                Reason::STREAM_CLOSED
            } else {
                Reason::PROTOCOL_ERROR
            };
            self.release_connection(flow_len);
            self.reset_for(stream, reason);
            return Ok(());
        }
        if state.stop_receiving {
            if end_stream {
                state.recv_closed = true;
            }
            self.release_connection(flow_len);
            self.close_if_done(stream);
            return Ok(());
        }
        state.recv_window -= i64::from(flow_len);
        state.received_length += data.len() as u64;
        let too_long = state.expected_length.is_some_and(|l| {
            state.received_length > l || (end_stream && state.received_length != l)
        });
        if state.recv_window < 0 || too_long {
            self.release_connection(flow_len);
            let reason = if too_long {
                Reason::PROTOCOL_ERROR
            } else {
                Reason::FLOW_CONTROL_ERROR
            };
            self.reset_for(stream, reason);
            return Ok(());
        }
        if end_stream {
            state.recv_closed = true;
        }
        if padding > 0 {
            self.release(stream, padding as usize);
        }
        self.events.push_back(Event::Data {
            stream,
            data,
            end_stream,
        });
        if end_stream {
            self.close_if_done(stream);
        }
        Ok(())
    }

    fn on_settings(&mut self, settings: frame::Settings) -> Result<(), ConnectionError> {
        if self.role == Role::Client && settings.enable_push == Some(true) {
            return Err(self.fail(Reason::PROTOCOL_ERROR, "a server enabled push"));
        }
        if let Some(size) = settings.header_table_size {
            self.encoder.set_max_table_size(size as usize);
        }
        if let Some(max) = settings.max_concurrent_streams {
            self.peer_max_concurrent_streams = max;
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame_size = size;
        }
        if let Some(window) = settings.initial_window_size {
            let delta = i64::from(window) - i64::from(self.peer_initial_window);
            self.peer_initial_window = window;
            let mut overflow = false;
            for (&id, state) in self.streams.iter_mut() {
                state.send_window += delta;
                overflow |= state.send_window > i64::from(frame::MAX_WINDOW);
                if delta > 0 && !state.ready && !state.queue.is_empty() {
                    state.ready = true;
                    self.ready.push_back(id);
                }
            }
            if overflow {
                return Err(self.fail(
                    Reason::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE took a stream's window past 2^31-1",
                ));
            }
        }
        frame::write_settings_ack(&mut self.out);
        Ok(())
    }

    fn on_goaway(&mut self, last_stream: u32, reason: Reason) -> Result<(), ConnectionError> {
        self.going_away.get_or_insert(reason);
        self.events.push_back(Event::GoAway {
            last_stream,
            reason,
        });
        // Streams this side opened that the peer will not process.
        let refused: Vec<u32> = self
            .streams
            .iter()
            .filter(|(id, s)| !s.remote && **id > last_stream)
            .map(|(id, _)| *id)
            .collect();
        for stream in refused {
            if let Some(state) = self.streams.remove(&stream) {
                self.forget(&state);
                self.events.push_back(Event::Reset {
                    stream,
                    reason: Reason::REFUSED_STREAM,
                    by_peer: true,
                });
            }
        }
        if reason != Reason::NO_ERROR {
            let error = ConnectionError {
                reason,
                what: "GOAWAY",
                by_peer: true,
            };
            self.closed = Some(error);
        }
        Ok(())
    }
}
