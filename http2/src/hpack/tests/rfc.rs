//! RFC 7541 Appendix C, decoded from the RFC's bytes, and encoded back where the RFC does not
//! Huffman-code (C.3 and C.5).

use super::*;

/// One step of an example: the block, the list it holds, the dynamic table after it (newest
/// first) and the table's size.
struct Step {
    block: &'static str,
    fields: &'static [(&'static str, &'static str)],
    table: &'static [(&'static str, &'static str)],
    size: usize,
}

/// Decodes the steps in turn with one decoder, checking the fields and the table after each.
fn decode_steps(max_table_size: usize, steps: &[Step]) {
    let mut decoder = Decoder::new(max_table_size);
    for (i, step) in steps.iter().enumerate() {
        let fields = decode(&mut decoder, &unhex(step.block)).expect("an RFC example decodes");
        assert_eq!(fields, list(step.fields), "fields of step {}", i + 1);
        assert_eq!(
            entries(decoder.table()),
            (list(step.table), step.size),
            "table after step {}",
            i + 1
        );
    }
}

/// Encodes the steps' lists with `Incremental` (the RFC's choice in C.3 and C.5) and checks the
/// bytes and the table after each. `skip` leading bytes of the first block are the size update
/// the RFC leaves out (its example starts with the table already at 256 bytes).
fn encode_steps(max_table_size: usize, skip: &[u8], steps: &[Step]) {
    let mut encoder = Encoder::new();
    encoder.set_max_table_size(max_table_size);
    for (i, step) in steps.iter().enumerate() {
        let mut block = encode(&mut encoder, step.fields, Indexing::Incremental);
        if i == 0 {
            assert_eq!(&block[..skip.len()], skip);
            block.drain(..skip.len());
        }
        assert_eq!(block, unhex(step.block), "bytes of step {}", i + 1);
        assert_eq!(
            entries(encoder.table()),
            (list(step.table), step.size),
            "table after step {}",
            i + 1
        );
    }
}

#[test]
fn c2_individual_representations() {
    // C.2.1: literal with incremental indexing, literal name.
    let mut decoder = Decoder::new(4096);
    let block = unhex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(list(&[("custom-key", "custom-header")]))
    );
    assert_eq!(
        entries(decoder.table()),
        (list(&[("custom-key", "custom-header")]), 55)
    );
    // C.2.2: literal without indexing, indexed name.
    let mut decoder = Decoder::new(4096);
    let block = unhex("040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(list(&[(":path", "/sample/path")]))
    );
    assert_eq!(entries(decoder.table()), (vec![], 0));
    // C.2.3: literal never indexed, literal name; the decoder says so.
    let mut decoder = Decoder::new(4096);
    let block = unhex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    let fields = decode_fields(&mut decoder, &block, usize::MAX).expect("decodes");
    assert_eq!(fields.len(), 1);
    assert_eq!(
        (&fields[0].name[..], &fields[0].value[..]),
        (&b"password"[..], &b"secret"[..])
    );
    assert!(fields[0].never_index);
    assert_eq!(entries(decoder.table()), (vec![], 0));
    // C.2.4: indexed field.
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &[0x82]),
        Ok(list(&[(":method", "GET")]))
    );
    assert_eq!(entries(decoder.table()), (vec![], 0));
    // The encoder writes the same bytes for C.2.2, C.2.3 and C.2.4 (C.2.1 is C.3.3's pattern).
    let mut encoder = Encoder::new();
    assert_eq!(
        encode(
            &mut encoder,
            &[(":path", "/sample/path")],
            Indexing::Without
        ),
        unhex("040c 2f73 616d 706c 652f 7061 7468")
    );
    assert_eq!(
        encode(&mut encoder, &[("password", "secret")], Indexing::Never),
        unhex("1008 7061 7373 776f 7264 0673 6563 7265 74")
    );
    assert_eq!(
        encode(&mut encoder, &[(":method", "GET")], Indexing::Incremental),
        [0x82]
    );
}

const REQUEST_1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQUEST_2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQUEST_3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQUEST_TABLE_1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQUEST_TABLE_2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQUEST_TABLE_3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

const C3: [Step; 3] = [
    Step {
        block: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        fields: REQUEST_1,
        table: REQUEST_TABLE_1,
        size: 57,
    },
    Step {
        block: "8286 84be 5808 6e6f 2d63 6163 6865",
        fields: REQUEST_2,
        table: REQUEST_TABLE_2,
        size: 110,
    },
    Step {
        block: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        fields: REQUEST_3,
        table: REQUEST_TABLE_3,
        size: 164,
    },
];

const C4: [Step; 3] = [
    Step {
        block: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        fields: REQUEST_1,
        table: REQUEST_TABLE_1,
        size: 57,
    },
    Step {
        block: "8286 84be 5886 a8eb 1064 9cbf",
        fields: REQUEST_2,
        table: REQUEST_TABLE_2,
        size: 110,
    },
    Step {
        block: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        fields: REQUEST_3,
        table: REQUEST_TABLE_3,
        size: 164,
    },
];

const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESPONSE_1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", DATE_1),
    ("location", LOCATION),
];
const RESPONSE_2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", DATE_1),
    ("location", LOCATION),
];
const RESPONSE_3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", DATE_2),
    ("location", LOCATION),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RESPONSE_TABLE_1: &[(&str, &str)] = &[
    ("location", LOCATION),
    ("date", DATE_1),
    ("cache-control", "private"),
    (":status", "302"),
];
const RESPONSE_TABLE_2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", LOCATION),
    ("date", DATE_1),
    ("cache-control", "private"),
];
const RESPONSE_TABLE_3: &[(&str, &str)] = &[
    ("set-cookie", COOKIE),
    ("content-encoding", "gzip"),
    ("date", DATE_2),
];

const C5: [Step; 3] = [
    Step {
        block: "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                6c65 2e63 6f6d",
        fields: RESPONSE_1,
        table: RESPONSE_TABLE_1,
        size: 222,
    },
    Step {
        block: "4803 3330 37c1 c0bf",
        fields: RESPONSE_2,
        table: RESPONSE_TABLE_2,
        size: 222,
    },
    Step {
        block: "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                3d31",
        fields: RESPONSE_3,
        table: RESPONSE_TABLE_3,
        size: 215,
    },
];

const C6: [Step; 3] = [
    Step {
        block: "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        fields: RESPONSE_1,
        table: RESPONSE_TABLE_1,
        size: 222,
    },
    Step {
        block: "4883 640e ffc1 c0bf",
        fields: RESPONSE_2,
        table: RESPONSE_TABLE_2,
        size: 222,
    },
    Step {
        block: "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        fields: RESPONSE_3,
        table: RESPONSE_TABLE_3,
        size: 215,
    },
];

#[test]
fn c3_requests_without_huffman() {
    decode_steps(4096, &C3);
    encode_steps(4096, &[], &C3);
}

#[test]
fn c4_requests_with_huffman() {
    decode_steps(4096, &C4);
}

#[test]
fn c5_responses_without_huffman_evicting() {
    decode_steps(256, &C5);
    // 256 in a size update: 001 11111, then 256 - 31 = 225 = 0xe1 0x01.
    encode_steps(256, &[0x3f, 0xe1, 0x01], &C5);
}

#[test]
fn c6_responses_with_huffman_evicting() {
    decode_steps(256, &C6);
}
