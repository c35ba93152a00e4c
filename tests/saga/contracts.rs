//! The contract documents of `schemas/` checked by validators that are not ours: the OpenAPI
//! descriptions by `openapi-spec-validator` (against the OpenAPI 3.1 schema), the AsyncAPI
//! description by the AsyncAPI Initiative's own parser (`@asyncapi/parser`: its schema, its
//! rules, every `$ref` resolved, the event schemas in `schemas/events/` included).
//!
//! Our own tests read these documents with a YAML library and look up what they need, which
//! says nothing about whether a code generator, a gateway or a documentation tool accepts
//! them; these checks do.
//!
//! The validators live in `target/tools/`, installed at pinned versions by
//! `scripts/validators/install.sh` (which `scripts/test.sh` runs). Without them these tests
//! fail and say how to install them: no test reports `ok` without having checked anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use saga_tests::repo_root;

const OPENAPI_DOCUMENTS: [&str; 2] = ["openapi.yaml", "psp.openapi.yaml"];
const ASYNCAPI_DOCUMENT: &str = "asyncapi.yaml";

/// Where `scripts/validators/install.sh` puts the validators: `<target dir>/tools`, the target
/// directory being the one this test binary was built in (`target/<profile>/deps/<binary>`).
fn tools_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is not in <target>/<profile>/deps")?;
    Ok(target.join("tools"))
}

/// A validator's verdict on one document.
struct Verdict {
    passed: bool,
    /// What it printed: its reasons, when it refused.
    report: String,
}

/// The installed validators.
struct Validators {
    /// `openapi-spec-validator`, in its virtual environment.
    openapi: PathBuf,
    /// The `node_modules` holding `@asyncapi/parser`.
    node_modules: PathBuf,
}

impl Validators {
    /// The validators, or an error that says how to install them.
    fn installed() -> Result<Self> {
        let tools = tools_dir()?;
        let validators = Self {
            openapi: tools.join("python/bin/openapi-spec-validator"),
            node_modules: tools.join("node/node_modules"),
        };
        let parser = validators.node_modules.join("@asyncapi/parser");
        if !validators.openapi.is_file() || !parser.is_dir() {
            bail!(
                "the contract validators are not installed in {}. Run scripts/validators/install.sh \
                 (scripts/test.sh does), which installs openapi-spec-validator (Python venv) and \
                 @asyncapi/parser (npm) at pinned versions.",
                tools.display()
            );
        }
        Ok(validators)
    }

    fn openapi(&self, document: &Path) -> Result<Verdict> {
        run(Command::new(&self.openapi).arg(document))
    }

    fn asyncapi(&self, document: &Path) -> Result<Verdict> {
        run(Command::new("node")
            .arg(repo_root().join("scripts/validators/asyncapi.cjs"))
            .arg(document)
            .env("NODE_PATH", &self.node_modules))
    }
}

fn run(command: &mut Command) -> Result<Verdict> {
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    Ok(Verdict {
        passed: output.status.success(),
        report: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

fn schemas() -> PathBuf {
    repo_root().join("schemas")
}

#[test]
fn openapi_documents_pass_an_independent_validator() -> Result<()> {
    let validators = Validators::installed()?;
    for name in OPENAPI_DOCUMENTS {
        let verdict = validators.openapi(&schemas().join(name))?;
        assert!(
            verdict.passed,
            "openapi-spec-validator refuses schemas/{name}:\n{}",
            verdict.report
        );
    }
    Ok(())
}

#[test]
fn asyncapi_document_passes_the_asyncapi_parser() -> Result<()> {
    let validators = Validators::installed()?;
    let verdict = validators.asyncapi(&schemas().join(ASYNCAPI_DOCUMENT))?;
    assert!(
        verdict.passed,
        "@asyncapi/parser refuses schemas/{ASYNCAPI_DOCUMENT}:\n{}",
        verdict.report
    );
    // It resolved the event schemas: a parser that skipped them would count no messages.
    assert!(
        verdict.report.contains("valid AsyncAPI 3.0.0"),
        "{}",
        verdict.report
    );
    Ok(())
}

/// An unquoted `, ` in a YAML flow mapping (`{ description: Applied, or not. }`) ends the value
/// and makes the rest a key without a value: the text is cut short, in silence where the
/// specification allows extra keys (JSON Schema objects do). So no key may be left without a
/// value, except where `null` is a value the document means.
#[test]
fn no_text_is_cut_short_by_a_comma() -> Result<()> {
    let mut problems = Vec::new();
    for name in OPENAPI_DOCUMENTS.into_iter().chain([ASYNCAPI_DOCUMENT]) {
        let text = std::fs::read_to_string(schemas().join(name))?;
        let doc: Value = serde_norway::from_str(&text)?;
        keys_without_values(&doc, name, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "keys without a value (quote text that holds a comma):\n  {}",
        problems.join("\n  ")
    );

    // And the check sees the slip it is for.
    let slip: Value = serde_norway::from_str("a: { description: Applied, or not. }")?;
    let mut found = Vec::new();
    keys_without_values(&slip, "slip", &mut found);
    assert_eq!(found, ["slip/a/or not."]);
    Ok(())
}

fn keys_without_values(value: &Value, path: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let here = format!("{path}/{key}");
                if value.is_null() && !["const", "default", "example"].contains(&key.as_str()) {
                    problems.push(here);
                } else {
                    keys_without_values(value, &here, problems);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                keys_without_values(item, &format!("{path}/{index}"), problems);
            }
        }
        _ => {}
    }
}

/// The validators would pass vacuously if they could not fail: broken copies, each with a
/// mistake of a kind that reaches a document by hand, must be refused.
#[test]
fn broken_documents_are_refused() -> Result<()> {
    let validators = Validators::installed()?;
    let scratch = tempfile::tempdir()?;
    // The AsyncAPI document refers to the event schemas beside it: copy them along.
    let events = scratch.path().join("events");
    std::fs::create_dir(&events)?;
    for entry in std::fs::read_dir(schemas().join("events"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), events.join(entry.file_name()))?;
    }
    let broken = |name: &str, from: &str, to: &str| -> Result<PathBuf> {
        let text = std::fs::read_to_string(schemas().join(name))?;
        assert!(
            text.contains(from),
            "fixture drifted: {from:?} not in {name}"
        );
        let path = scratch.path().join(name);
        std::fs::write(&path, text.replacen(from, to, 1))?;
        Ok(path)
    };

    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "psp.openapi.yaml",
            r#""204": { description: "Applied, or recognised as already applied." }"#,
            r#""204": { description: Applied, or recognised as already applied. }"#,
            "a response cut short by an unquoted comma",
        ),
        (
            "openapi.yaml",
            "operationId: getOrder\n",
            "operationId: getOrder\n      requestBody: {}\n",
            "a request body without content",
        ),
        (
            "openapi.yaml",
            "  orderConfirmed:\n    post:",
            "  orderConfirmed:\n    deliver:",
            "a webhook with an unknown method",
        ),
        (
            ASYNCAPI_DOCUMENT,
            "./events/payment.completed.v1.schema.json",
            "./events/payment.complete.v1.schema.json",
            "a message whose payload schema does not exist",
        ),
        (
            ASYNCAPI_DOCUMENT,
            "        partitions: 8\n",
            "        partitions: \"8\"\n",
            "a partition count that is not a number",
        ),
        (
            ASYNCAPI_DOCUMENT,
            "      - $ref: \"#/channels/payments/messages/paymentCompleted\"\n  inventorySvcReleases",
            "      - $ref: \"#/channels/orders/messages/orderCreated\"\n  inventorySvcReleases",
            "an operation sending a message of another channel",
        ),
    ];
    for (name, from, to, what) in cases {
        let path = broken(name, from, to)?;
        let verdict = if name == ASYNCAPI_DOCUMENT {
            validators.asyncapi(&path)?
        } else {
            validators.openapi(&path)?
        };
        assert!(!verdict.passed, "{what} passed:\n{}", verdict.report);
    }
    Ok(())
}
