//! Whole batches through [`parse`]: every rejection code, every batch error, the COPY
//! bytes, and properties (no input panics; valid events come out as they went in).

use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

fn options() -> Options<'static> {
    Options {
        received_at_us: NOW,
        ..Options::default()
    }
}

fn reasons(body: &str, options: &Options<'_>) -> Vec<(usize, &'static str, String)> {
    let parsed = parse(body.as_bytes(), options).unwrap();
    parsed
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.code(), r.reason.to_string()))
        .collect()
}

fn code_of(event: &str) -> &'static str {
    let rejected = reasons(&format!("[{event}]"), &options());
    rejected.first().map_or("accepted", |r| r.1)
}

#[test]
fn every_rejection_code() {
    let ts = r#""timestamp":"2026-01-01T00:00:00Z""#;
    for (event, code) in [
        (format!(r#"{{"type":"a",{ts}}}"#), "accepted"),
        ("1".into(), "not_an_object"),
        ("[{}]".into(), "not_an_object"),
        (format!(r#"{{"type":"a",{ts},"extra":1}}"#), "unknown_field"),
        (
            format!(r#"{{"type":"a",{ts},"\ud800":1}}"#),
            "unknown_field",
        ),
        (
            format!(r#"{{"type":"a",{ts},"type":"b"}}"#),
            "duplicate_key",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{}},"attributes":1}}"#),
            "duplicate_key",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"k":1,"\u006b":2}}}}"#),
            "duplicate_key",
        ),
        (format!(r#"{{{ts}}}"#), "invalid_type"),
        (format!(r#"{{"type":"A",{ts}}}"#), "invalid_type"),
        (format!(r#"{{"type":"_a",{ts}}}"#), "invalid_type"),
        (
            format!(r#"{{"type":"{}",{ts}}}"#, "a".repeat(65)),
            "invalid_type",
        ),
        (format!(r#"{{"type":1,{ts}}}"#), "invalid_type"),
        (
            format!(r#"{{"type":"{}",{ts}}}"#, "a".repeat(64)),
            "accepted",
        ),
        (format!(r#"{{"type":"\u0061.b-c_9",{ts}}}"#), "accepted"),
        (r#"{"type":"a"}"#.into(), "invalid_timestamp"),
        (
            r#"{"type":"a","timestamp":"2026-01-01"}"#.into(),
            "invalid_timestamp",
        ),
        (
            r#"{"type":"a","timestamp":null}"#.into(),
            "invalid_timestamp",
        ),
        (
            r#"{"type":"a","timestamp":1e999}"#.into(),
            "invalid_timestamp",
        ),
        (
            r#"{"type":"a","timestamp":1767225600.5}"#.into(),
            "accepted",
        ),
        (
            r#"{"type":"a","timestamp":1767225901}"#.into(),
            "timestamp_out_of_range",
        ),
        (
            r#"{"type":"a","timestamp":"2025-12-01T00:00:00Z"}"#.into(),
            "timestamp_out_of_range",
        ),
        (
            r#"{"type":"a","timestamp":-1e15}"#.into(),
            "timestamp_out_of_range",
        ),
        (format!(r#"{{"type":"a",{ts},"id":""}}"#), "invalid_id"),
        (format!(r#"{{"type":"a",{ts},"id":"a b"}}"#), "invalid_id"),
        (format!(r#"{{"type":"a",{ts},"id":null}}"#), "invalid_id"),
        (
            format!(r#"{{"type":"a",{ts},"id":"{}"}}"#, "x".repeat(129)),
            "invalid_id",
        ),
        (
            format!(r#"{{"type":"a",{ts},"id":"{}"}}"#, "x".repeat(128)),
            "accepted",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":[]}}"#),
            "invalid_attributes",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":null}}"#),
            "invalid_attributes",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"":1}}}}"#),
            "invalid_attribute_key",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"a\u001fb":1}}}}"#),
            "invalid_attribute_key",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"a{}b":1}}}}"#, '\u{7f}'),
            "invalid_attribute_key",
        ),
        (
            format!(
                r#"{{"type":"a",{ts},"attributes":{{"{}":1}}}}"#,
                "k".repeat(129)
            ),
            "invalid_attribute_key",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"k":{{}}}}}}"#),
            "invalid_attribute_value",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"k":"\u0000"}}}}"#),
            "invalid_attribute_value",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"k":"\udfff"}}}}"#),
            "invalid_attribute_value",
        ),
        (
            format!(
                r#"{{"type":"a",{ts},"attributes":{{"k":"{}"}}}}"#,
                "v".repeat(4097)
            ),
            "invalid_attribute_value",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"k":1e1001}}}}"#),
            "invalid_attribute_value",
        ),
        (
            format!(r#"{{"type":"a",{ts},"attributes":{{"k":1E-01000}}}}"#),
            "accepted",
        ),
        (
            format!(
                r#"{{"type":"a",{ts},"attributes":{{"k":"{}"}}}}"#,
                "é".repeat(2048)
            ),
            "accepted",
        ),
    ] {
        assert_eq!(code_of(&event), code, "{event}");
    }
    let many: Vec<String> = (0..65).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let event = format!(r#"{{"type":"a",{ts},"attributes":{{{}}}}}"#, many.join(","));
    assert_eq!(code_of(&event), "too_many_attributes");
    let event = format!(
        r#"{{"type":"a",{ts},"attributes":{{{},"k0":1}}}}"#,
        many[..40].join(",")
    );
    assert_eq!(code_of(&event), "duplicate_key", "past the pairwise check");
}

#[test]
fn the_first_failing_check_names_the_reason() {
    // Unknown field first, though type, timestamp and attributes are all wrong too.
    assert_eq!(
        code_of(r#"{"type":1,"attributes":2,"x":3}"#),
        "unknown_field"
    );
    assert_eq!(
        code_of(r#"{"type":1,"timestamp":"x","id":""}"#),
        "invalid_type"
    );
    assert_eq!(
        code_of(r#"{"type":"a","timestamp":"x","id":""}"#),
        "invalid_timestamp"
    );
    let allowed = ["b".to_owned()];
    let only_b = Options {
        allowed_types: Some(&allowed),
        ..options()
    };
    let rejected = reasons(
        r#"[{"type":"a"},{"type":"b","timestamp":1767225600}]"#,
        &only_b,
    );
    assert_eq!(
        rejected,
        [(
            0,
            "type_not_allowed",
            "type is not one of the types allowed here".into()
        )]
    );
}

#[test]
fn batch_errors() {
    let o = options();
    let err = |body: &[u8], o: &Options<'_>| parse(body, o).unwrap_err();
    assert_eq!(err(b" \n", &o), IngestError::Empty { ndjson: false });
    assert_eq!(err(b"[\xff]", &o), IngestError::NotUtf8);
    assert_eq!(err(b"  {}", &o), IngestError::NotArray { at: 2 });
    assert_eq!(err(b"[{}, {} {}]", &o), IngestError::Malformed { event: 2 });
    assert_eq!(err(b"[{}, 1.]", &o), IngestError::Malformed { event: 1 });
    assert_eq!(err(b"[{}, NaN]", &o), IngestError::Malformed { event: 1 });
    assert_eq!(err(b"[{},", &o), IngestError::Malformed { event: 1 });
    assert_eq!(err(b"[] x", &o), IngestError::TrailingData);
    let deep = format!("[{{}}, {}1{}]", "[".repeat(33), "]".repeat(33));
    assert_eq!(
        err(deep.as_bytes(), &o),
        IngestError::Malformed { event: 1 }
    );
    let ok_depth = format!(
        r#"[{{"type":"a","timestamp":1767225600,"attributes": {{"k": {}1{}}}}}]"#,
        "[".repeat(30),
        "]".repeat(30)
    );
    assert_eq!(
        parse(ok_depth.as_bytes(), &o).unwrap().rejected[0].reason,
        Reason::NestedAttributeValue
    );
    let two = Options {
        max_events: 2,
        ..options()
    };
    assert_eq!(
        err(b"[1,2,3,x]", &two),
        IngestError::TooManyEvents { max_events: 2 }
    );
    assert_eq!(err(b"[1,2,x]", &two), IngestError::Malformed { event: 2 });
    assert_eq!(
        err(
            b"[1,2]",
            &Options {
                encoding: Encoding::Gzip,
                ..options()
            }
        ),
        IngestError::BadGzip
    );

    let nd = Options {
        format: Format::Ndjson,
        ..options()
    };
    assert_eq!(
        err(b"\n \r\n\t\n", &nd),
        IngestError::Empty { ndjson: true }
    );
    assert_eq!(err(b"x\n[\n", &nd), IngestError::NoJsonLine);
    assert_eq!(
        err(
            b"1\n2\n\n3\n",
            &Options {
                max_events: 2,
                ..nd.clone()
            }
        ),
        IngestError::TooManyEvents { max_events: 2 }
    );
    assert_eq!(IngestError::NoJsonLine.code(), "not_json");
}

#[test]
fn ndjson_lines() {
    let nd = Options {
        format: Format::Ndjson,
        ..options()
    };
    let body = "{\"type\":\"a\",\"timestamp\":1767225600}\r\n\n  \nnot json\n[]\n\u{feff}{}\n{\"type\":\"a\",\"timestamp\":1767225600,\"attributes\":{\"d\":".to_owned()
        + &"[".repeat(31)
        + &"]".repeat(31)
        + "}}";
    let got: Vec<_> = reasons(&body, &nd)
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(
        got,
        [
            (1, "invalid_json"),
            (2, "not_an_object"),
            (3, "invalid_json"),
            (4, "invalid_json")
        ]
    );
}

#[test]
fn copy_rows() {
    let body = r#"[{"id":"e-1","type":"x","timestamp":"2026-01-01T00:00:00.000001Z",
        "attributes":{"s":"é\n\"\/","n":-1.50e+2,"b":true,"z":null,"\u00e9":"\u0001"}},
        {"type":"y","timestamp":1767225600}]"#;
    let o = Options {
        organization_id: [1; 16],
        agent_id: [2; 16],
        batch_id: [3; 16],
        ..options()
    };
    let parsed = parse(body.as_bytes(), &o).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected.len()), (2, 0));
    let data = &parsed.copy_data;
    assert_eq!(&data[..19], b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
    assert_eq!(&data[data.len() - 2..], [0xff, 0xff]);
    let attrs = "{\"s\":\"é\\n\\\"/\",\"n\":-1.50e+2,\"b\":true,\"z\":null,\"é\":\"\\u0001\"}";
    let mut row = vec![0, 9];
    for id in [1, 2, 3] {
        row.extend([0, 0, 0, 16]);
        row.extend([id; 16]);
    }
    row.extend([
        0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3, b'e', b'-', b'1', 0, 0, 0, 1, b'x', 0, 0, 0, 8,
    ]);
    row.extend((NOW + 1 - copy::PG_EPOCH_US).to_be_bytes());
    row.extend((attrs.len() as i32 + 1).to_be_bytes());
    row.push(1);
    row.extend(attrs.as_bytes());
    row.extend([0, 0, 0, 8]);
    row.extend((NOW - copy::PG_EPOCH_US).to_be_bytes());
    assert_eq!(&data[19..19 + row.len()], &row[..]);
    let second = &data[19 + row.len()..];
    assert_eq!(&second[62..70], [0, 0, 0, 4, 0, 0, 0, 1]);
    assert_eq!(&second[70..74], [0xff; 4], "no id: NULL");
}

#[test]
fn compressed_batches() {
    use std::io::Write;
    let body = br#"[{"type":"a","timestamp":1767225600}]"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&body[..], 3).unwrap();
    let plain = parse(body, &options()).unwrap();
    assert_eq!(
        parse(
            &gz,
            &Options {
                encoding: Encoding::Gzip,
                ..options()
            }
        )
        .unwrap(),
        plain
    );
    assert_eq!(
        parse(
            &zst,
            &Options {
                encoding: Encoding::Zstd,
                ..options()
            }
        )
        .unwrap(),
        plain
    );
}

fn event_json() -> impl Strategy<Value = (String, String)> {
    let key = "[a-z\u{e9}\"\\\\/\u{1f600}]{1,8}";
    let value = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("null".to_owned()),
        "[ -~\u{e9}\u{2028}\u{1f600}]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let members = proptest::collection::btree_map(key, value, 0..10);
    (members, 1_766_620_800i64..=1_767_225_900).prop_map(|(members, secs)| {
        let attrs: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
            .collect();
        let attrs = format!("{{{}}}", attrs.join(","));
        let event = format!(r#"{{"type":"t","timestamp":{secs},"attributes":{attrs}}}"#);
        (event, attrs)
    })
}

proptest! {
    #[test]
    fn no_input_panics(body in proptest::collection::vec(any::<u8>(), 0..200), ndjson: bool, encoding in 0..3usize) {
        let options = Options {
            format: if ndjson { Format::Ndjson } else { Format::Json },
            encoding: [Encoding::Identity, Encoding::Gzip, Encoding::Zstd][encoding],
            ..options()
        };
        let _ = parse(&body, &options);
    }

    #[test]
    fn no_json_text_panics(body in r#"[\[\]{}",:0-9a-z\\ .eE+-]{0,80}"#) {
        let _ = parse(format!("[{body}]").as_bytes(), &options());
        let _ = parse(body.as_bytes(), &Options { format: Format::Ndjson, ..options() });
    }

    #[test]
    fn valid_events_come_out_as_they_went_in(events in proptest::collection::vec(event_json(), 1..8)) {
        let body = format!("[{}]", events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>().join(","));
        let parsed = parse(body.as_bytes(), &options()).unwrap();
        prop_assert_eq!(parsed.accepted, events.len());
        let mut rest = &parsed.copy_data[19..];
        for (_, attrs) in &events {
            // The row's attributes field starts after 62 + 8 + 4 + 5 + 12 bytes.
            let at = 62 + 8 + 4 + 5 + 12;
            let len = i32::from_be_bytes(rest[at..at + 4].try_into().unwrap()) as usize;
            let jsonb = &rest[at + 5..at + 4 + len];
            // serde_json escapes as Python does, so the bytes are the same.
            prop_assert_eq!(std::str::from_utf8(jsonb).unwrap(), attrs.as_str());
            rest = &rest[at + 4 + len + 12..];
        }
        prop_assert_eq!(rest, &[0xff, 0xff]);
    }
}

#[test]
fn timestamps_across_postgresqls_whole_range() {
    let wide = Options {
        max_age_seconds: u64::MAX / 2_000_000,
        max_future_seconds: u64::MAX / 2_000_000,
        ..options()
    };
    let body =
        br#"[{"type":"a","timestamp":-210866803200},{"type":"a","timestamp":-210866803200.0001},
        {"type":"a","timestamp":9224318015999.99},{"type":"a","timestamp":9224318016000}]"#;
    let parsed = parse(body, &wide).unwrap();
    let codes: Vec<_> = parsed
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.clone()))
        .collect();
    assert_eq!(
        codes,
        [(1, Reason::OutsidePostgres), (3, Reason::OutsidePostgres)]
    );
    // The last instant is past i64::MAX in Unix microseconds, not since 2000.
    let ts_at = 19 + 62 + 8 + 4 + 5 + 4;
    let first = i64::from_be_bytes(parsed.copy_data[ts_at..ts_at + 8].try_into().unwrap());
    assert_eq!(first, -211_813_488_000_000_000);
}
