use bytes::{BufMut, BytesMut};

use super::write::write_head;
use super::*;

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
    let mut bytes = BytesMut::new();
    write_head(&mut bytes, payload.len(), kind, flags, stream);
    bytes.put_slice(payload);
    bytes
}

fn one(mut bytes: BytesMut) -> Result<Frame, FrameError> {
    let frame = decode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).map(|f| f.expect("a whole frame"));
    if frame.is_ok() {
        assert!(bytes.is_empty(), "the frame was not consumed whole");
    }
    frame
}

fn reason(result: Result<Frame, FrameError>) -> (Reason, Option<u32>) {
    let error = result.expect_err("an error");
    (error.reason, error.stream)
}

#[test]
fn a_frame_is_taken_only_once_it_is_whole() {
    let mut bytes = raw(DATA, END_STREAM, 1, b"hello");
    let mut partial = bytes.split_to(HEAD_LEN + 2);
    assert_eq!(decode(&mut partial, DEFAULT_MAX_FRAME_SIZE), Ok(None));
    assert_eq!(partial.len(), HEAD_LEN + 2, "nothing consumed");
    partial.unsplit(bytes);
    partial.put_slice(b"next");
    let frame = decode(&mut partial, DEFAULT_MAX_FRAME_SIZE).expect("valid");
    assert_eq!(
        frame,
        Some(Frame::Data {
            stream: 1,
            data: Bytes::from_static(b"hello"),
            end_stream: true,
            flow_len: 5,
        })
    );
    assert_eq!(&partial[..], b"next", "the next frame's bytes stay");
}

#[test]
fn a_frame_over_the_limit_is_refused_before_its_payload_arrives() {
    let mut head = BytesMut::new();
    write_head(&mut head, 16_385, DATA, 0, 1);
    let error = decode(&mut head, DEFAULT_MAX_FRAME_SIZE).expect_err("too long");
    assert_eq!(error.reason, Reason::FRAME_SIZE_ERROR);
    assert_eq!(error.stream, None);
}

#[test]
fn padding_is_removed_and_counted_for_flow_control() {
    let frame = one(raw(DATA, PADDED, 3, b"\x02abc\0\0")).expect("valid");
    assert_eq!(
        frame,
        Frame::Data {
            stream: 3,
            data: Bytes::from_static(b"abc"),
            end_stream: false,
            flow_len: 6,
        }
    );
    assert_eq!(
        reason(one(raw(DATA, PADDED, 3, b"\x04abc"))),
        (Reason::PROTOCOL_ERROR, None),
        "padding as long as the payload"
    );
    assert_eq!(
        reason(one(raw(DATA, PADDED, 3, b""))),
        (Reason::FRAME_SIZE_ERROR, None)
    );
}

#[test]
fn headers_lose_padding_and_priority_fields() {
    let payload = b"\x01\x80\0\0\x07\x10block\0";
    let frame = one(raw(
        HEADERS,
        PADDED | PRIORITY_FLAG | END_HEADERS,
        5,
        payload,
    ));
    assert_eq!(
        frame,
        Ok(Frame::Headers {
            stream: 5,
            fragment: Bytes::from_static(b"block"),
            end_stream: false,
            end_headers: true,
        })
    );
    let on_itself = raw(HEADERS, PRIORITY_FLAG, 5, b"\0\0\0\x05\x10");
    assert_eq!(reason(one(on_itself)), (Reason::PROTOCOL_ERROR, Some(5)));
}

#[test]
fn each_type_is_checked_against_its_stream_and_length() {
    let connection =
        |kind, flags, stream, payload: &[u8]| reason(one(raw(kind, flags, stream, payload)));
    let protocol = (Reason::PROTOCOL_ERROR, None);
    let size = (Reason::FRAME_SIZE_ERROR, None);
    assert_eq!(connection(DATA, 0, 0, b"x"), protocol);
    assert_eq!(connection(HEADERS, 0, 0, b""), protocol);
    assert_eq!(connection(CONTINUATION, 0, 0, b""), protocol);
    assert_eq!(connection(RST_STREAM, 0, 0, &[0; 4]), protocol);
    assert_eq!(connection(RST_STREAM, 0, 1, &[0; 3]), size);
    assert_eq!(connection(SETTINGS, 0, 1, b""), protocol);
    assert_eq!(connection(SETTINGS, 0, 0, &[0; 5]), size);
    assert_eq!(connection(SETTINGS, ACK, 0, &[0; 6]), size);
    assert_eq!(connection(PING, 0, 1, &[0; 8]), protocol);
    assert_eq!(connection(PING, 0, 0, &[0; 7]), size);
    assert_eq!(connection(GOAWAY, 0, 1, &[0; 8]), protocol);
    assert_eq!(connection(GOAWAY, 0, 0, &[0; 7]), size);
    assert_eq!(connection(WINDOW_UPDATE, 0, 0, &[0; 3]), size);
    assert_eq!(connection(WINDOW_UPDATE, 0, 0, &[0; 4]), protocol);
    assert_eq!(
        connection(WINDOW_UPDATE, 0, 7, &[0; 4]),
        (Reason::PROTOCOL_ERROR, Some(7)),
        "a WINDOW_UPDATE of 0 on a stream resets that stream"
    );
    assert_eq!(
        connection(PRIORITY, 0, 7, &[0; 4]),
        (Reason::FRAME_SIZE_ERROR, Some(7))
    );
    assert_eq!(one(raw(0xfa, 0xff, 9, b"whatever")), Ok(Frame::Unknown));
}

#[test]
fn settings_values_are_read_and_bounded() {
    let mut written = BytesMut::new();
    let settings = Settings {
        header_table_size: Some(0),
        enable_push: Some(false),
        max_concurrent_streams: Some(1024),
        initial_window_size: Some(1 << 20),
        max_frame_size: Some(MAX_MAX_FRAME_SIZE),
        max_header_list_size: Some(65_536),
    };
    write_settings(&mut written, &settings);
    written.put_slice(
        &raw(
            SETTINGS,
            0,
            0,
            b"\x00\x03\x00\x00\x00\x07\x12\x34\0\0\0\x01",
        )[..],
    );
    assert_eq!(
        one(written.split_to(HEAD_LEN + 36)),
        Ok(Frame::Settings(settings))
    );
    assert_eq!(
        one(written),
        Ok(Frame::Settings(Settings {
            max_concurrent_streams: Some(7),
            ..Settings::default()
        })),
        "an unknown setting (0x1234) is ignored"
    );
    let value = |id: u16, value: u32| {
        let mut payload = BytesMut::new();
        payload.put_u16(id);
        payload.put_u32(value);
        reason(one(raw(SETTINGS, 0, 0, &payload)))
    };
    assert_eq!(value(0x2, 2), (Reason::PROTOCOL_ERROR, None));
    assert_eq!(
        value(0x4, MAX_WINDOW + 1),
        (Reason::FLOW_CONTROL_ERROR, None)
    );
    assert_eq!(value(0x5, 16_383), (Reason::PROTOCOL_ERROR, None));
    assert_eq!(
        value(0x5, MAX_MAX_FRAME_SIZE + 1),
        (Reason::PROTOCOL_ERROR, None)
    );
}

#[test]
fn control_frames_read_back_as_written() {
    let mut bytes = BytesMut::new();
    write_settings_ack(&mut bytes);
    write_ping(&mut bytes, true, *b"12345678");
    write_window_update(&mut bytes, 3, MAX_WINDOW);
    write_reset(&mut bytes, 3, Reason::CANCEL);
    write_goaway(&mut bytes, 7, Reason::ENHANCE_YOUR_CALM, b"calm");
    write_data_head(&mut bytes, 9, 2, true);
    bytes.put_slice(b"ok");
    let mut frames = Vec::new();
    while let Some(frame) = decode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).expect("valid") {
        frames.push(frame);
    }
    assert_eq!(
        frames,
        [
            Frame::SettingsAck,
            Frame::Ping {
                ack: true,
                payload: *b"12345678"
            },
            Frame::WindowUpdate {
                stream: 3,
                increment: MAX_WINDOW
            },
            Frame::Reset {
                stream: 3,
                reason: Reason::CANCEL
            },
            Frame::GoAway {
                last_stream: 7,
                reason: Reason::ENHANCE_YOUR_CALM,
                debug: Bytes::from_static(b"calm")
            },
            Frame::Data {
                stream: 9,
                data: Bytes::from_static(b"ok"),
                end_stream: true,
                flow_len: 2
            },
        ]
    );
}

#[test]
fn a_long_header_block_continues_in_continuation_frames() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut bytes = BytesMut::from(&b"before"[..]);
    let start = begin_headers(&mut bytes, 11, true);
    bytes.put_slice(&block);
    finish_headers(&mut bytes, start, DEFAULT_MAX_FRAME_SIZE);
    let _ = bytes.split_to(6);
    let mut fragments = Vec::new();
    let mut flags = Vec::new();
    while let Some(frame) = decode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).expect("valid") {
        match frame {
            Frame::Headers {
                stream: 11,
                fragment,
                end_stream,
                end_headers,
            } => {
                flags.push((end_stream, end_headers));
                fragments.extend_from_slice(&fragment);
            }
            Frame::Continuation {
                stream: 11,
                fragment,
                end_headers,
            } => {
                flags.push((false, end_headers));
                fragments.extend_from_slice(&fragment);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fragments, block);
    assert_eq!(flags, [(true, false), (false, false), (false, true)]);

    let mut short = BytesMut::new();
    let start = begin_headers(&mut short, 1, false);
    short.put_slice(b"\x82");
    finish_headers(&mut short, start, DEFAULT_MAX_FRAME_SIZE);
    assert_eq!(
        one(short),
        Ok(Frame::Headers {
            stream: 1,
            fragment: Bytes::from_static(b"\x82"),
            end_stream: false,
            end_headers: true
        })
    );
}
