//! serde's type errors in a values file's terms: what was written and what the key takes (a
//! number, true or false, text such as 256MB), with the profile's own value as the example.

use serde_yaml::Value;

/// The cause and the hint for serde's `message` about a value at `key`, whose value in the
/// embedded profile is `example`.
pub fn words(message: &str, key: &str, example: Option<&Value>) -> (String, String) {
    let parsed = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "));
    let Some((found, expected)) = parsed else {
        return (
            format!("key `{key}`: {}", crate::error::clipped(message, 200)),
            "fix the value; `phonebill-db values --env ENV` prints every key with its value".into(),
        );
    };
    let takes = takes(expected);
    let cause = format!("key `{key}` is {}, not {takes}", found_words(found));
    let example = example
        .and_then(|v| serde_yaml::to_string(v).ok())
        .map(|t| t.trim_end().to_string())
        .filter(|t| !t.contains('\n') && t.len() <= 60)
        // `extensions[0]: x` is no key of a values file: no example for a list's item.
        .filter(|_| !key.contains('['));
    let hint = match example {
        Some(e) => format!(
            "write {takes}, as the profile does: `{key}: {e}`; `phonebill-db values --env ENV` prints every key with its value"
        ),
        None => format!(
            "write {takes}; `phonebill-db values --env ENV` prints every key with its value"
        ),
    };
    (cause, hint)
}

/// What serde says it found, as a person would say it.
fn found_words(found: &str) -> String {
    if found == "unit value" {
        return "empty".into();
    }
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {}", crate::error::clipped(text, 60));
    }
    for (prefix, what) in [
        ("integer ", "the number"),
        ("floating point ", "the number"),
        ("boolean ", ""),
    ] {
        if let Some(v) = found.strip_prefix(prefix) {
            let v = v.trim_matches('`');
            return if what.is_empty() {
                v.to_string()
            } else {
                format!("{what} {v}")
            };
        }
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a map of keys".into(),
        other => other.into(),
    }
}

/// What serde expected, as a person would say it.
fn takes(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "text".into(),
        "a sequence" => "a list".into(),
        e if e.starts_with("struct ") || e.starts_with("a map") || e == "map" => {
            "a map of keys".into()
        }
        // serde_yaml's word for an enum given as anything but one of its names.
        e if e.contains("enum") => "one of the names the profile allows".into(),
        other => other.into(),
    }
}

/// The value at a serde path (`snapshots.keep`, `extensions[0]`) of `v`.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            cur = cur.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serdes_words_become_the_users() {
        let seven = Value::from(7);
        let (cause, hint) = words(
            "invalid type: string \"lots\", expected u32",
            "snapshots.keep",
            Some(&seven),
        );
        assert_eq!(
            cause,
            "key `snapshots.keep` is the text \"lots\", not a whole number from 0 to 4294967295"
        );
        assert!(
            hint.starts_with("write a whole number from 0 to 4294967295, as the profile does: `snapshots.keep: 7`"),
            "{hint}"
        );
        let (cause, _) = words(
            "invalid type: unit value, expected a boolean",
            "metrics.enabled",
            None,
        );
        assert_eq!(cause, "key `metrics.enabled` is empty, not true or false");
        let buffers = Value::from("256MB");
        let (cause, hint) = words(
            "invalid type: integer `256`, expected a string",
            "postgresql.sharedBuffers",
            Some(&buffers),
        );
        assert_eq!(
            cause,
            "key `postgresql.sharedBuffers` is the number 256, not text"
        );
        assert!(hint.contains("`postgresql.sharedBuffers: 256MB`"), "{hint}");
    }

    #[test]
    fn a_path_finds_its_value() {
        let v: Value = serde_yaml::from_str("a: {b: [1, {c: x}]}").unwrap();
        assert_eq!(at(&v, "a.b[1].c"), Some(&Value::from("x")));
        assert_eq!(at(&v, "a.b[0]"), Some(&Value::from(1)));
        assert_eq!(at(&v, "a.z"), None);
    }
}
