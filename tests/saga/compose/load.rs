//! Reading docker-compose.yml as Compose does: YAML with merge keys, then `${VAR}`
//! interpolation; and `.env.example`, which must document every interpolated variable.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde_json::Value;

/// The YAML as written, merge keys (`<<: *anchor`) applied but nothing interpolated.
pub(super) fn parse_yaml(raw: &str) -> Result<Value> {
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(raw).context("docker-compose.yml is not valid YAML")?;
    yaml.apply_merge()?;
    Ok(serde_json::to_value(&yaml)?)
}

/// The file as Compose uses it on a first `docker compose up` without `.env`: merged, and every
/// `${VAR:-default}` replaced by its default. That is the run the issue is about.
pub(super) fn load_compose(raw: &str) -> Result<Value> {
    let mut doc = parse_yaml(raw)?;
    interpolate_strings(&mut doc)?;
    Ok(doc)
}

fn interpolate_strings(value: &mut Value) -> Result<()> {
    match value {
        Value::String(text) => {
            let mut out = String::new();
            for piece in pieces(text)? {
                match piece {
                    Piece::Text(text) => out.push_str(&text),
                    Piece::Var(var) => match var.op.as_str() {
                        ":-" | "-" => out.push_str(&var.arg),
                        ":?" | "?" => bail!("${{{}}} is required: {}", var.name, var.arg),
                        _ => {}
                    },
                }
            }
            *text = out;
        }
        Value::Array(items) => items.iter_mut().try_for_each(interpolate_strings)?,
        Value::Object(map) => map.values_mut().try_for_each(interpolate_strings)?,
        _ => {}
    }
    Ok(())
}

/// A `${NAME<op><arg>}` or `$NAME` reference.
struct Var {
    name: String,
    /// `""`, `:-`, `-`, `:?`, `?`, `:+` or `+`.
    op: String,
    arg: String,
}

enum Piece {
    Text(String),
    Var(Var),
}

/// Splits a string the way Compose's interpolation reads it (`$$` is a literal `$`).
fn pieces(text: &str) -> Result<Vec<Piece>> {
    let name_re = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*")?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push(Piece::Text(rest[..at].to_owned()));
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push(Piece::Text("$".to_owned()));
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .with_context(|| format!("unclosed ${{ in {text:?}"))?;
            let inner = &body[..end];
            let name = name_re.find(inner).map_or("", |m| m.as_str());
            let tail = &inner[name.len()..];
            let op = [":-", ":?", ":+", "-", "?", "+"]
                .into_iter()
                .find(|op| tail.starts_with(op))
                .unwrap_or("");
            if name.is_empty() || (op.is_empty() && !tail.is_empty()) {
                bail!("cannot read ${{{inner}}} in {text:?}");
            }
            out.push(Piece::Var(Var {
                name: name.to_owned(),
                op: op.to_owned(),
                arg: tail[op.len()..].to_owned(),
            }));
            rest = &body[end + 1..];
        } else if let Some(name) = name_re.find(after) {
            out.push(Piece::Var(Var {
                name: name.as_str().to_owned(),
                op: String::new(),
                arg: String::new(),
            }));
            rest = &after[name.end()..];
        } else {
            out.push(Piece::Text("$".to_owned()));
            rest = after;
        }
    }
    out.push(Piece::Text(rest.to_owned()));
    Ok(out)
}

/// `NAME=value` lines; comments and blank lines skipped.
pub(super) fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Every `${VAR}` must be documented in `.env.example` with the same value as its default, and
/// have a default, so that a first `docker compose up` without `.env` works; `.env.example`
/// must not document variables the file does not use.
pub(super) fn interpolation_problems(
    raw: &str,
    env_example: &BTreeMap<String, String>,
) -> Vec<String> {
    fn collect(value: &Value, into: &mut Vec<Var>) -> Result<()> {
        match value {
            Value::String(text) => {
                into.extend(pieces(text)?.into_iter().filter_map(|piece| match piece {
                    Piece::Var(var) => Some(var),
                    Piece::Text(_) => None,
                }))
            }
            Value::Array(items) => items.iter().try_for_each(|item| collect(item, into))?,
            Value::Object(map) => map.values().try_for_each(|item| collect(item, into))?,
            _ => {}
        }
        Ok(())
    }
    let mut vars = Vec::new();
    if let Err(error) = parse_yaml(raw).and_then(|doc| collect(&doc, &mut vars)) {
        return vec![format!("{error:#}")];
    }
    let mut problems = Vec::new();
    for var in &vars {
        match env_example.get(&var.name) {
            None => problems.push(format!("${{{}}} is not in .env.example", var.name)),
            Some(value) if matches!(var.op.as_str(), ":-" | "-") && &var.arg != value => problems
                .push(format!(
                    "${{{}}} defaults to {:?}, .env.example says {value:?}",
                    var.name, var.arg
                )),
            Some(_) => {}
        }
        if var.op.is_empty() || var.op.ends_with('+') {
            problems.push(format!(
                "${{{}}} has no default: empty without .env",
                var.name
            ));
        }
    }
    let used: BTreeSet<&str> = vars.iter().map(|var| var.name.as_str()).collect();
    for name in env_example.keys() {
        if !used.contains(name.as_str()) {
            problems.push(format!(
                ".env.example sets {name}, which docker-compose.yml never uses"
            ));
        }
    }
    problems
}

/// The interpolation reader itself: if it misread `$$` or a default, every check after it would
/// look at the wrong values.
#[test]
fn interpolation_reads_defaults_and_escapes_like_compose() -> Result<()> {
    let doc = load_compose(
        "a: ${X:-one}/${Y-two}\nb: $${NOT_A_VAR} costs $$5\nc: x${UNSET}y$Z\nd: 1@localhost:9093\n",
    )?;
    assert_eq!(doc["a"], "one/two");
    assert_eq!(doc["b"], "${NOT_A_VAR} costs $5");
    assert_eq!(doc["c"], "xy");
    assert_eq!(doc["d"], "1@localhost:9093");
    assert!(load_compose("a: ${REQUIRED:?set it}\n").is_err());
    assert!(load_compose("a: ${UNCLOSED\n").is_err());
    let example = parse_env_file("# comment\nX=one\nY = two\nSECRET=whsec_a+b/c=\n");
    assert_eq!(
        example.get("SECRET").map(String::as_str),
        Some("whsec_a+b/c=")
    );
    assert!(
        interpolation_problems("a: ${X:-one}\nb: ${Y:-two}\nc: $${SECRET}\n", &example)
            .iter()
            .any(|problem| problem.contains("SECRET"))
    );
    Ok(())
}
