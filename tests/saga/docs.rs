//! The documentation's links resolve: every relative link in `README.md` and under `docs/`
//! names a file or directory that exists and, with a `#fragment`, a heading of the target page.
//!
//! Fragments follow GitHub's heading anchors: the heading's text, lowercased, with spaces turned
//! into `-` and every other character that is not a letter, a digit, `-` or `_` dropped; a
//! repeated heading gets `-1`, `-2`, …. Links with a scheme (`https:`, `mailto:`) are not
//! fetched: the tests run without network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use anyhow::{Context, Result};
use regex::Regex;

use saga_tests::repo_root;

/// `[text](target)` and `![alt](target "title")`; the text may span lines.
static INLINE_LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).expect("valid regex")
});
/// `[label]: target` reference definitions.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)").expect("valid regex")
});
/// Inline code spans, which may wrap across lines; links inside them are text.
static CODE_SPAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"`[^`]*`").expect("valid regex"));
/// A scheme (`https:`, `mailto:`): not a relative link.
static SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").expect("valid regex"));

#[test]
fn every_relative_link_in_readme_and_docs_resolves() -> Result<()> {
    let root = repo_root().canonicalize()?;
    let mut pages = vec![root.join("README.md")];
    pages.extend(markdown_under(&root.join("docs"))?);
    let mut checked = 0;
    let mut broken = Vec::new();
    for page in &pages {
        let report = check_page(page)?;
        checked += report.checked;
        broken.extend(report.broken);
    }
    assert!(
        broken.is_empty(),
        "broken links ({} of {checked}):\n{}",
        broken.len(),
        broken.join("\n")
    );
    // README and docs/ link to each other and into the code dozens of times: finding only a
    // handful would mean the parser went blind, not that the links are fine.
    assert!(
        checked >= 40,
        "only {checked} relative links found in {} pages",
        pages.len()
    );
    Ok(())
}

#[test]
fn a_missing_file_or_heading_is_reported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("sub"))?;
    std::fs::write(
        dir.path().join("sub/other.md"),
        "# Other page\n\n## Replicas: on Postgres (2 or more)\n\n## Notes\n\n## Notes\n",
    )?;
    std::fs::write(
        dir.path().join("page.md"),
        "# Page\n\n## What `it` is, briefly\n\n\
         Fine: [a](sub/other.md), [b](sub/other.md#replicas-on-postgres-2-or-more),\n\
         [c](#what-it-is-briefly), [d](sub/other.md#notes-1), [the\ndirectory](sub),\n\
         [e](https://example.invalid/nowhere.md), `[not a link](nowhere.md)`.\n\n\
         Broken: [f](missing.md), [g](sub/other.md#replicas), [h](#nope), [i](sub/other.md#notes-2).\n\n\
         ```sh\n[in a code block](nowhere.md)\n# Not a heading\n```\n\n\
         [ref]: sub/gone.md\n",
    )?;
    let report = check_page(&dir.path().join("page.md"))?;
    let broken: Vec<&str> = report
        .broken
        .iter()
        .map(|line| line.rsplit(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        broken,
        [
            "missing.md",
            "sub/other.md#replicas",
            "#nope",
            "sub/other.md#notes-2",
            "sub/gone.md"
        ],
        "{report:?}"
    );
    assert_eq!(report.checked, 10, "{report:?}");
    Ok(())
}

/// What checking one page found.
#[derive(Debug)]
struct Report {
    /// Relative links looked at.
    checked: usize,
    /// `<page>: <target>` for each link that does not resolve.
    broken: Vec<String>,
}

/// Checks every relative link of `page`.
fn check_page(page: &Path) -> Result<Report> {
    let text = read(page)?;
    let prose = CODE_SPAN
        .replace_all(&outside_code_blocks(&text), "")
        .into_owned();
    let targets = INLINE_LINK
        .captures_iter(&prose)
        .chain(REFERENCE.captures_iter(&prose))
        .map(|captures| captures[1].to_owned())
        .filter(|target| !SCHEME.is_match(target));
    let dir = page.parent().context("a page has a directory")?;
    let mut anchors_of: HashMap<PathBuf, Vec<String>> = HashMap::new();
    let mut report = Report {
        checked: 0,
        broken: Vec::new(),
    };
    for target in targets {
        report.checked += 1;
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() {
            page.to_owned()
        } else {
            dir.join(path)
        };
        let resolves = file.exists()
            && match fragment {
                None => true,
                Some(fragment) => {
                    let is_markdown = file.extension().is_some_and(|ext| ext == "md");
                    if !anchors_of.contains_key(&file) && is_markdown {
                        anchors_of.insert(file.clone(), anchors(&read(&file)?));
                    }
                    anchors_of
                        .get(&file)
                        .is_some_and(|anchors| anchors.iter().any(|anchor| anchor == fragment))
                }
            };
        if !resolves {
            report.broken.push(format!("{}: {target}", page.display()));
        }
    }
    Ok(report)
}

/// The anchors GitHub gives the headings of a Markdown page, in order.
fn anchors(markdown: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    outside_code_blocks(markdown)
        .lines()
        .filter_map(|line| {
            let hashes = line.len() - line.trim_start_matches('#').len();
            let text = line[hashes..].strip_prefix(' ')?;
            (1..=6).contains(&hashes).then(|| slug(text))
        })
        .map(|slug| {
            let count = seen.entry(slug.clone()).or_insert(0);
            let anchor = match *count {
                0 => slug,
                n => format!("{slug}-{n}"),
            };
            *count += 1;
            anchor
        })
        .collect()
}

/// GitHub's anchor of one heading's text.
fn slug(heading: &str) -> String {
    // A link in a heading contributes its text only.
    let text = INLINE_LINK.replace_all(
        heading.trim().trim_end_matches('#').trim_end(),
        |c: &regex::Captures<'_>| {
            let whole = &c[0];
            whole[1..whole.find("](").unwrap_or(1)].to_owned()
        },
    );
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// `markdown` with fenced code blocks blanked out (their lines kept empty, so nothing in them
/// reads as a link or a heading).
fn outside_code_blocks(markdown: &str) -> String {
    let mut fenced = false;
    markdown
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                ""
            } else if fenced {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.md` file under `dir`, sorted.
fn markdown_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(markdown_under(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
