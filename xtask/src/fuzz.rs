//! `cargo xtask fuzz NAME --seconds N`: runs one fuzz target of `fuzz/` with cargo-fuzz (libFuzzer, nightly) for N
//! seconds. The corpus grows in `fuzz/corpus/NAME`; an input that makes a target fail is kept in
//! `fuzz/artifacts/NAME/` and must become a regression test (docs/TESTING.md).

use std::path::Path;
use std::process::Command;

/// The targets in `fuzz/fuzz_targets`.
pub const TARGETS: [&str; 5] = ["names", "config", "export", "backup_format", "snapshot"];

/// What `cargo xtask fuzz` was asked.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub target: String,
    pub seconds: u64,
}

impl Args {
    /// Parses `NAME [--seconds N]` (60 seconds by default).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut target = None;
        let mut seconds = 60;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => {
                    let v = it.next().ok_or("--seconds needs a number, as in --seconds 600")?;
                    seconds = v.parse().map_err(|_| format!("--seconds {v}: not a whole number of seconds"))?;
                }
                name if target.is_none() && !name.starts_with('-') => target = Some(name.to_owned()),
                other => return Err(format!("unexpected argument {other}")),
            }
        }
        let target = target.ok_or_else(|| format!("name a fuzz target: {}", TARGETS.join(", ")))?;
        if !TARGETS.contains(&target.as_str()) {
            return Err(format!("no fuzz target {target}; the targets are {}", TARGETS.join(", ")));
        }
        Ok(Self { target, seconds })
    }
}

/// Runs the target; installs cargo-fuzz first when it is missing.
pub fn run(root: &Path, args: &Args) -> Result<(), String> {
    let has_fuzz = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_fuzz {
        eprintln!("cargo-fuzz is missing: cargo install cargo-fuzz --locked");
        let ok = Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]).status().is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot install cargo-fuzz".into());
        }
    }
    let corpus = root.join("fuzz/corpus").join(&args.target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    // The fuzz build (sanitizers, nightly) lives in fuzz/target, never in a workspace target directory.
    let status = Command::new("cargo")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(root)
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", &args.target])
        .arg(&corpus)
        .args(["--", &format!("-max_total_time={}", args.seconds), "-print_final_stats=1"])
        .status()
        .map_err(|e| format!("cannot run cargo +nightly fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("fuzz target {} failed ({status}); the input is in fuzz/artifacts/{}/", args.target, args.target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_a_target_and_its_time() {
        assert_eq!(Args::parse(&args(&["export", "--seconds", "600"])), Ok(Args { target: "export".into(), seconds: 600 }));
        assert_eq!(Args::parse(&args(&["names"])), Ok(Args { target: "names".into(), seconds: 60 }));
        assert!(Args::parse(&args(&["nope"])).unwrap_err().contains("the targets are"));
        assert!(Args::parse(&args(&[])).unwrap_err().contains("name a fuzz target"));
        assert!(Args::parse(&args(&["names", "--seconds", "x"])).unwrap_err().contains("not a whole number"));
    }

    /// Every target named here has a source file and a `[[bin]]` in fuzz/Cargo.toml, and the other way round.
    #[test]
    fn the_list_matches_fuzz_cargo_toml() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
        let bins = manifest.matches("[[bin]]").count();
        assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml has {bins} targets");
        for t in TARGETS {
            assert!(manifest.contains(&format!("name = \"{t}\"")), "{t} is not a [[bin]] of fuzz/Cargo.toml");
            assert!(root.join(format!("fuzz/fuzz_targets/{t}.rs")).is_file(), "fuzz/fuzz_targets/{t}.rs is missing");
        }
    }
}
