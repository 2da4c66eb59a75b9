//! The slice of `cargo metadata` that tidy and bench need: workspace members with their declared dependencies
//! (from `--no-deps`) and the resolved dependency graph (from the full metadata) for transitive checks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// How a dependency is declared: `[dependencies]`, `[dev-dependencies]` or `[build-dependencies]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepKind {
    Normal,
    Dev,
    Build,
}

impl DepKind {
    fn from_metadata(kind: Option<&str>) -> Self {
        match kind {
            Some("dev") => Self::Dev,
            Some("build") => Self::Build,
            _ => Self::Normal,
        }
    }

    /// The manifest table the dependency is declared in, for messages.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Self::Normal => "[dependencies]",
            Self::Dev => "[dev-dependencies]",
            Self::Build => "[build-dependencies]",
        }
    }
}

/// One dependency as a member's manifest declares it.
#[derive(Debug, Clone)]
pub(crate) struct Dep {
    /// The package name (not the `rename`d name), so rules match what is really linked.
    pub(crate) name: String,
    pub(crate) kind: DepKind,
    pub(crate) optional: bool,
}

/// A workspace member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) manifest_path: PathBuf,
    /// `Some([])` means `publish = false`; `None` means publishable to any registry.
    pub(crate) publish: Option<Vec<String>>,
    pub(crate) deps: Vec<Dep>,
}

/// The workspace as tidy sees it.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) members: Vec<Member>,
    /// Package id → package name, for every package in the resolved graph.
    names: HashMap<String, String>,
    /// Package id → ids it depends on as a normal or build dependency (what ends up in a non-test build).
    build_edges: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RawMetadata {
    packages: Vec<RawPackage>,
    workspace_members: Vec<String>,
    workspace_root: PathBuf,
    resolve: Option<RawResolve>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    id: String,
    manifest_path: PathBuf,
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    dependencies: Vec<RawDependency>,
}

#[derive(Deserialize)]
struct RawDependency {
    name: String,
    kind: Option<String>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
struct RawResolve {
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
struct RawNode {
    id: String,
    #[serde(default)]
    deps: Vec<RawNodeDep>,
}

#[derive(Deserialize)]
struct RawNodeDep {
    pkg: String,
    dep_kinds: Vec<RawDepKind>,
}

#[derive(Deserialize)]
struct RawDepKind {
    kind: Option<String>,
}

/// Runs `cargo metadata --format-version 1` (with `--no-deps` when `with_deps` is false) on the workspace at `root`.
pub(crate) fn cargo_metadata(root: &Path, with_deps: bool) -> Result<serde_json::Value, String> {
    // The cargo that built xtask, so a rustup override or a CI toolchain is honoured.
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["metadata", "--format-version", "1"]).arg("--manifest-path").arg(root.join("Cargo.toml"));
    if !with_deps {
        cmd.arg("--no-deps");
    }
    let output = cmd.output().map_err(|err| format!("cannot run `cargo metadata`: {err}"))?;
    if !output.status.success() {
        return Err(format!("`cargo metadata` failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| format!("`cargo metadata` printed invalid JSON: {err}"))
}

impl Workspace {
    /// Reads both metadata documents of the workspace at `root`.
    pub(crate) fn load(root: &Path) -> Result<Self, String> {
        Self::from_metadata(cargo_metadata(root, false)?, cargo_metadata(root, true)?)
    }

    /// Builds the model from `cargo metadata --no-deps` (members and their declared dependencies) and the full
    /// metadata (the resolved graph).
    pub(crate) fn from_metadata(no_deps: serde_json::Value, full: serde_json::Value) -> Result<Self, String> {
        let no_deps: RawMetadata =
            serde_json::from_value(no_deps).map_err(|err| format!("unexpected `cargo metadata --no-deps` shape: {err}"))?;
        let full: RawMetadata = serde_json::from_value(full).map_err(|err| format!("unexpected `cargo metadata` shape: {err}"))?;
        let resolve = full.resolve.ok_or("full `cargo metadata` has no `resolve` section")?;

        let member_ids: HashSet<&String> = no_deps.workspace_members.iter().collect();
        let mut members: Vec<Member> = no_deps
            .packages
            .into_iter()
            .filter(|package| member_ids.contains(&package.id))
            .map(|package| Member {
                name: package.name,
                id: package.id,
                manifest_path: package.manifest_path,
                publish: package.publish,
                deps: package
                    .dependencies
                    .into_iter()
                    .map(|dep| Dep { name: dep.name, kind: DepKind::from_metadata(dep.kind.as_deref()), optional: dep.optional })
                    .collect(),
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));

        let names = full.packages.into_iter().map(|package| (package.id, package.name)).collect();
        let build_edges = resolve
            .nodes
            .into_iter()
            .map(|node| {
                let deps = node
                    .deps
                    .into_iter()
                    .filter(|dep| dep.dep_kinds.iter().any(|kind| DepKind::from_metadata(kind.kind.as_deref()) != DepKind::Dev))
                    .map(|dep| dep.pkg)
                    .collect();
                (node.id, deps)
            })
            .collect();

        Ok(Self { root: no_deps.workspace_root, members, names, build_edges })
    }

    pub(crate) fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|member| member.name == name)
    }

    /// Every package that a non-test build of `member` compiles (normal and build dependencies, transitively),
    /// each with the chain of package names that pulls it in, starting at `member` itself. Breadth-first, so each
    /// chain is a shortest one.
    pub(crate) fn build_closure(&self, member: &Member) -> Vec<Vec<String>> {
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([member.id.as_str()]);
        let mut order = Vec::new();
        while let Some(id) = queue.pop_front() {
            for dep in self.build_edges.get(id).into_iter().flatten() {
                if dep != &member.id && !parent.contains_key(dep.as_str()) {
                    parent.insert(dep, id);
                    order.push(dep.as_str());
                    queue.push_back(dep);
                }
            }
        }
        order
            .into_iter()
            .map(|id| {
                let mut chain = vec![self.name_of(id)];
                let mut cursor = id;
                while let Some(&up) = parent.get(cursor) {
                    chain.push(self.name_of(up));
                    cursor = up;
                }
                chain.reverse();
                chain
            })
            .collect()
    }

    fn name_of(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! Synthetic `cargo metadata` documents, so every tidy rule can be shown to fire on a small, readable workspace.

    use serde_json::{Value, json};

    use super::{DepKind, Workspace};

    /// A package in a synthetic workspace or its dependency graph.
    pub(crate) struct Package {
        pub(crate) name: &'static str,
        pub(crate) member: bool,
        pub(crate) publish: Option<Vec<&'static str>>,
        pub(crate) deps: Vec<(&'static str, DepKind, bool)>,
    }

    /// A workspace member with `publish = false` and the given `(name, kind, optional)` dependencies.
    pub(crate) fn member(name: &'static str, deps: &[(&'static str, DepKind, bool)]) -> Package {
        Package { name, member: true, publish: Some(vec![]), deps: deps.to_vec() }
    }

    /// A registry package with the given normal dependencies.
    pub(crate) fn external(name: &'static str, deps: &[&'static str]) -> Package {
        Package { name, member: false, publish: None, deps: deps.iter().map(|&dep| (dep, DepKind::Normal, false)).collect() }
    }

    pub(crate) fn normal(name: &'static str) -> (&'static str, DepKind, bool) {
        (name, DepKind::Normal, false)
    }

    pub(crate) fn dev(name: &'static str) -> (&'static str, DepKind, bool) {
        (name, DepKind::Dev, false)
    }

    fn id(package: &Package) -> String {
        if package.member {
            format!("path+file:///ws/crates/{}#0.0.0", package.name)
        } else {
            format!("registry+https://github.com/rust-lang/crates.io-index#{}@1.0.0", package.name)
        }
    }

    fn kind(kind: DepKind) -> Value {
        match kind {
            DepKind::Normal => Value::Null,
            DepKind::Dev => json!("dev"),
            DepKind::Build => json!("build"),
        }
    }

    /// The `(--no-deps, full)` metadata pair for `packages`, in cargo's real JSON shape (trimmed to used fields).
    /// Optional dependencies are left out of the resolve, as cargo does when no feature enables them.
    pub(crate) fn metadata(packages: &[Package]) -> (Value, Value) {
        let to_json = |package: &Package| {
            json!({
                "name": package.name,
                "version": "0.0.0",
                "id": id(package),
                "manifest_path": format!("/ws/crates/{}/Cargo.toml", package.name),
                "publish": package.publish,
                "dependencies": package.deps.iter().map(|(name, dep_kind, optional)| json!({
                    "name": name, "req": "*", "kind": kind(*dep_kind), "rename": null, "optional": optional,
                    "uses_default_features": true, "features": [], "target": null,
                })).collect::<Vec<_>>(),
            })
        };
        let id_of = |name: &str| packages.iter().find(|p| p.name == name).map(id).unwrap_or_else(|| panic!("fixture: no package {name}"));
        let members: Vec<String> = packages.iter().filter(|p| p.member).map(id).collect();
        let nodes: Vec<Value> = packages
            .iter()
            .map(|package| {
                let deps: Vec<Value> = package
                    .deps
                    .iter()
                    .filter(|(_, _, optional)| !optional)
                    .map(|(name, dep_kind, _)| {
                        json!({"name": name.replace('-', "_"), "pkg": id_of(name), "dep_kinds": [{"kind": kind(*dep_kind), "target": null}]})
                    })
                    .collect();
                json!({"id": id(package), "dependencies": [], "deps": deps, "features": []})
            })
            .collect();
        let no_deps = json!({
            "packages": packages.iter().filter(|p| p.member).map(to_json).collect::<Vec<_>>(),
            "workspace_members": members,
            "workspace_root": "/ws",
            "target_directory": "/ws/target",
            "resolve": null,
            "version": 1,
        });
        let full = json!({
            "packages": packages.iter().map(to_json).collect::<Vec<_>>(),
            "workspace_members": members,
            "workspace_root": "/ws",
            "target_directory": "/ws/target",
            "resolve": {"nodes": nodes, "root": null},
            "version": 1,
        });
        (no_deps, full)
    }

    pub(crate) fn workspace(packages: &[Package]) -> Workspace {
        let (no_deps, full) = metadata(packages);
        Workspace::from_metadata(no_deps, full).expect("fixture metadata parses")
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{dev, external, member, normal, workspace};
    use super::*;

    #[test]
    fn reads_members_and_their_declared_dependencies() {
        let ws = workspace(&[
            member("colstore-app", &[normal("colstore-domain"), dev("colstore-testkit"), ("walkdir", DepKind::Build, true)]),
            member("colstore-domain", &[]),
            member("colstore-testkit", &[normal("colstore-domain")]),
            external("walkdir", &[]),
        ]);
        assert_eq!(ws.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["colstore-app", "colstore-domain", "colstore-testkit"]);
        let app = ws.member("colstore-app").unwrap();
        let deps: Vec<_> = app.deps.iter().map(|d| (d.name.as_str(), d.kind, d.optional)).collect();
        assert_eq!(
            deps,
            [("colstore-domain", DepKind::Normal, false), ("colstore-testkit", DepKind::Dev, false), ("walkdir", DepKind::Build, true)]
        );
        assert_eq!(app.publish, Some(vec![]));
        assert_eq!(ws.root, Path::new("/ws"));
    }

    #[test]
    fn build_closure_follows_normal_edges_and_skips_dev_edges() {
        let ws = workspace(&[
            member("a", &[normal("b"), dev("dev-only")]),
            external("b", &["c"]),
            external("c", &[]),
            external("dev-only", &["d"]),
            external("d", &[]),
        ]);
        let closure = ws.build_closure(ws.member("a").unwrap());
        assert_eq!(closure, [vec!["a", "b"], vec!["a", "b", "c"]]);
    }

    #[test]
    fn build_closure_survives_dependency_cycles() {
        // Dev-dependency cycles are legal in cargo; a normal cycle through a dev edge must not loop forever.
        let ws = workspace(&[member("a", &[normal("b")]), member("b", &[dev("a")])]);
        assert_eq!(ws.build_closure(ws.member("a").unwrap()), [vec!["a", "b"]]);
        assert!(ws.build_closure(ws.member("b").unwrap()).is_empty());
    }
}
