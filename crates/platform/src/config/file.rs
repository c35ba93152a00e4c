//! Settings that name a file of data (the catalog's `CATALOG_PATH`), with a copy built into the
//! program for when none is given.

use std::fmt::Display;
use std::path::Path;

use crate::PlatformError;

/// Reads the file the setting `name` gives as `path` and parses it with `parse`; without a
/// path, parses `built_in`. A file that cannot be read or parsed is a configuration error that
/// names the setting and the file, so that a service refuses to start on it.
pub fn load_file<T, E: Display>(
    name: &str,
    path: Option<&Path>,
    built_in: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, PlatformError> {
    let invalid = |value: String, reason: String| PlatformError::Config {
        name: name.to_owned(),
        value,
        reason,
    };
    let Some(path) = path else {
        return parse(built_in).map_err(|error| invalid("(built-in)".into(), error.to_string()));
    };
    let value = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|error| invalid(value.clone(), error.to_string()))?;
    parse(&text).map_err(|error| invalid(value, error.to_string()))
}

/// The product catalog every service that prices or stocks products reads: `CATALOG_PATH`, or
/// the catalog built into the program.
pub fn load_catalog(path: Option<&Path>) -> Result<events::Catalog, PlatformError> {
    load_file(
        "CATALOG_PATH",
        path,
        events::Catalog::BUILT_IN,
        events::Catalog::parse,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Result<u32, std::num::ParseIntError> {
        text.trim().parse()
    }

    #[test]
    fn the_file_wins_over_the_built_in_copy() -> Result<(), PlatformError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("n.txt");
        std::fs::write(&path, "7\n")?;
        assert_eq!(load_file("N_PATH", Some(&path), "1", number)?, 7);
        assert_eq!(load_file("N_PATH", None, "1", number)?, 1);
        Ok(())
    }

    #[test]
    fn a_missing_or_bad_file_names_the_setting_and_the_file() -> Result<(), PlatformError> {
        let dir = tempfile::tempdir()?;
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "seven")?;
        for path in [bad, dir.path().join("missing.txt")] {
            let error = load_file("N_PATH", Some(&path), "1", number).err();
            let message = error.map(|error| error.to_string()).unwrap_or_default();
            assert!(message.contains("N_PATH"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        Ok(())
    }
}
