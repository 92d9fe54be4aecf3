//! `learnrec demo`: the whole LEARN pipeline in one command, resumable stage by stage.
//!
//! world / MovieLens-1M → `embed` (content store) → `sequences` → `train` (LEARN towers: ID input
//! and LLM-content input) → `retrieval-eval` (Table 1 form) → `export` → `rank-train` (baseline vs
//! LEARN-fused) → `fusion-eval` (Tables 6/7) → `ab-sim` → `index.md` / `index.html`.
//!
//! Every stage is exactly the subcommand a user would type (printed before it runs), run
//! in-process. Each records a marker `OUT/.stages/NAME.done` holding its command line; a rerun
//! skips a stage whose command is unchanged and whose outputs exist, so a killed demo resumes
//! where it stopped (and `train` resumes from its last epoch checkpoint).

use anyhow::{Context, Result};
use clap::ValueEnum;
use learnrec_eval::assets::{self, Asset};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The dataset the demo runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataArg {
    /// The synthetic e-commerce world (ground truth for `ab-sim`).
    World,
    /// MovieLens-1M (fetched; `ab-sim` uses a fitted oracle).
    #[value(name = "movielens-1m")]
    Movielens1m,
}

/// The frozen content encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderArg {
    /// Gemma-3-270M (GGUF Q4_K_M): a decoder LLM, the default.
    #[value(name = "gemma3-270m")]
    Gemma3_270m,
    /// all-MiniLM-L6-v2: BERT, the paper's Table 1 baseline.
    Minilm,
    /// Qwen2.5-Coder-1.5B (GGUF Q4_K_M): a larger decoder LLM.
    #[value(name = "qwen2.5-1.5b")]
    Qwen2_5_1_5b,
}

impl EncoderArg {
    fn asset(self) -> Asset {
        match self {
            EncoderArg::Gemma3_270m => Asset::Gemma3_270m,
            EncoderArg::Minilm => Asset::Minilm,
            EncoderArg::Qwen2_5_1_5b => Asset::Qwen25_1_5b,
        }
    }
    fn name(self) -> &'static str {
        self.asset().name()
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output (report) directory.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = DataArg::World)]
    pub data: DataArg,
    /// Content encoder. The default is MiniLM because Gemma-3-270M runs at ~80–90 tokens/s on 2
    /// cores (~25 min for the default world's 2,000 items); pass `--encoder gemma3-270m` for it.
    #[arg(long, value_enum, default_value_t = EncoderArg::Minilm)]
    pub encoder: EncoderArg,
    /// World size: users.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// World size: items.
    #[arg(long, default_value_t = 2_000)]
    pub items: u32,
    /// World size: days.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Tower training epochs (paper: 10).
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Tower layers (paper: 12).
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Tower width (paper: 768).
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// History positions the towers see (paper: 80).
    #[arg(long, default_value_t = 30)]
    pub history_len: usize,
    /// Target items per user in training (paper: 40).
    #[arg(long, default_value_t = 10)]
    pub target_len: usize,
    /// Simulated A/B days (paper: 9).
    #[arg(long, default_value_t = 9)]
    pub ab_days: u32,
    /// Seed of every stage.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// One stage: its name, the `learnrec` command line and the outputs it must leave.
struct Stage {
    name: &'static str,
    argv: Vec<String>,
    outputs: Vec<PathBuf>,
    /// When this file exists (a killed run's checkpoint), the command gets `--resume`.
    resume_from: Option<PathBuf>,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

macro_rules! argv {
    ($($a:expr),* $(,)?) => { vec![$($a.to_string()),*] };
}

pub fn run(a: Args) -> Result<()> {
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create the output directory {}", out.display()))?;
    let t0 = Instant::now();
    let seed = a.seed.to_string();
    let (data_dir, data_kind, split) = match a.data {
        DataArg::World => (out.join("world"), "world", "temporal"),
        DataArg::Movielens1m => (assets::path_of(Asset::Movielens1m), "movielens", "leave-last"),
    };
    let catalog = match a.data {
        DataArg::World => data_dir.join("catalog.csv"),
        DataArg::Movielens1m => data_dir.join("ml-1m.item"),
    };
    let content = out.join("content.safetensors");
    let seq = out.join("sequences");
    let towers = out.join("towers");
    let learn = out.join("learn");
    let rank = out.join("rank");
    let ab = out.join("ab");
    let (epochs, layers, d_model) = (a.epochs.to_string(), a.layers.to_string(), a.d_model.to_string());
    let mut stages = Vec::new();
    match a.data {
        DataArg::World => stages.push(Stage {
            name: "world",
            argv: argv!["world", "--out", s(&data_dir), "--users", a.users, "--items", a.items, "--days", a.days, "--seed", seed],
            outputs: vec![catalog.clone(), data_dir.join("interactions.csv"), data_dir.join("world.json")], resume_from: None }),
        DataArg::Movielens1m => stages.push(Stage {
            name: "fetch-data",
            argv: argv!["fetch", "movielens-1m"],
            outputs: vec![catalog.clone()], resume_from: None }),
    }
    stages.push(Stage {
        name: "fetch-encoder",
        argv: argv!["fetch", a.encoder.name()],
        outputs: vec![assets::path_of(a.encoder.asset())], resume_from: None });
    let mut embed = argv!["embed", "--model", a.encoder.name(), "--items", s(&catalog), "--out", s(&content)];
    if a.data == DataArg::Movielens1m {
        embed.extend(argv!["--template", "{title} | {category}"]);
    }
    stages.push(Stage { name: "embed", argv: embed, outputs: vec![content.clone()], resume_from: None });
    let mut sequences = argv!["sequences", "--data", s(&data_dir), "--out", s(&seq), "--split", split];
    if a.data == DataArg::Movielens1m {
        sequences.extend(argv!["--target-len", "10"]);
    }
    stages.push(Stage { name: "sequences", argv: sequences, outputs: vec![seq.join("train.jsonl"), seq.join("test.jsonl")], resume_from: None });
    let tower_flags = |input: &str, dir: &Path| {
        let mut v = argv![
            "train", "--sequences", s(&seq.join("train.jsonl")), "--out", s(dir), "--input", input,
            "--epochs", epochs, "--layers", layers, "--d-model", d_model, "--heads", "4", "--lr", "1e-3",
            "--batch-size", "128", "--history-len", a.history_len, "--target-len", a.target_len,
            "--seed", seed, "--quiet"
        ];
        if input != "id" {
            v.extend(argv!["--content", s(&content)]);
        }
        v
    };
    let content_input = if a.encoder == EncoderArg::Minilm { "bert-content" } else { "llm-content" };
    let rows = [("ID", "id", towers.join("id")), ("Content", content_input, towers.join("content"))];
    for (label, input, dir) in &rows {
        let name: &'static str = if *input == "id" { "train-id" } else { "train-content" };
        stages.push(Stage {
            name,
            argv: tower_flags(input, dir),
            outputs: vec![dir.join("config.json")],
            resume_from: Some(dir.join("checkpoint.bin")),
        });
        let mut ev = argv![
            "retrieval-eval", "--model", s(dir), "--sequences", s(&seq.join("test.jsonl")),
            "--out", s(&out.join(format!("retrieval_{}.json", label.to_lowercase())))
        ];
        if *input != "id" {
            ev.extend(argv!["--content", s(&content)]);
        }
        let name: &'static str = if *input == "id" { "retrieval-id" } else { "retrieval-content" };
        stages.push(Stage { name, argv: ev, outputs: vec![out.join(format!("retrieval_{}.json", label.to_lowercase()))], resume_from: None });
    }
    stages.push(Stage {
        name: "export",
        argv: argv![
            "export", "--model", s(&towers.join("content")), "--sequences", s(&seq.join("test.jsonl")),
            "--content", s(&content), "--users-out", s(&learn.join("user.safetensors")),
            "--items-out", s(&learn.join("item.safetensors"))
        ],
        outputs: vec![learn.join("user.safetensors"), learn.join("item.safetensors")], resume_from: None });
    let mut rank_train = argv![
        "rank-train", "--data", data_kind, "--dir", s(&data_dir), "--user-store", s(&learn.join("user.safetensors")),
        "--item-store", s(&learn.join("item.safetensors")), "--content-store", s(&content), "--out", s(&rank),
        "--seed", seed
    ];
    if a.data == DataArg::Movielens1m {
        // The towers' cut (`sequences --split leave-last --target-len 10`): the ranker's test rows
        // are each user's last 10 ratings, which the exported user embeddings never see.
        rank_train.extend(argv!["--leave-last", "10"]);
    }
    stages.push(Stage { name: "rank-train", argv: rank_train, outputs: vec![rank.join("predictions.csv")], resume_from: None });
    let mut ab_argv = argv![
        "ab-sim", "--control", "baseline", "--treatment", "fused", "--rankers", s(&rank.join("rankers")),
        "--user-store", s(&learn.join("user.safetensors")), "--item-store", s(&learn.join("item.safetensors")),
        "--content-store", s(&content), "--days", a.ab_days, "--seed", seed, "--out", s(&ab), "--quiet"
    ];
    match a.data {
        DataArg::World => ab_argv.extend(argv!["--env", "world", "--world-dir", s(&data_dir)]),
        DataArg::Movielens1m => ab_argv.extend(argv!["--env", "movielens", "--data", s(&data_dir)]),
    }
    let ab_stage = Stage { name: "ab-sim", argv: ab_argv, outputs: vec![ab.join("report.html")], resume_from: None };
    for st in &stages {
        run_stage(&out, st)?;
    }
    // fusion-eval (Tables 6/7) on the ranker's test predictions: a library call, same as the
    // `fusion-eval` binary.
    let pred = rank.join("predictions.csv");
    let fe = out.join("fusion_eval");
    run_step(&out, "fusion-eval", &s(&pred), &[fe.join("report.md")], || {
        let input = learnrec_eval::fusion_eval::Input { pred: pred.clone(), ..Default::default() };
        let opts = learnrec_eval::fusion_eval::Options::default();
        let r = learnrec_eval::fusion_eval::evaluate_file(&input, &opts)?;
        learnrec_eval::atomic::write(&fe.join("report.txt"), r.to_text().as_bytes())?;
        learnrec_eval::atomic::write(&fe.join("report.md"), r.to_markdown().as_bytes())?;
        learnrec_eval::atomic::write(&fe.join("report.json"), serde_json::to_string_pretty(&r)?.as_bytes())?;
        learnrec_eval::fusion_eval::plot::deltas_svg(&r, &fe.join("deltas.svg"))?;
        print!("{}", r.to_text());
        Ok(())
    })?;
    run_stage(&out, &ab_stage)?;
    let mut sections = vec![(
        "Pipeline".to_string(),
        format!(
            "Data: **{}**; content encoder: **{}**; towers: {} layers, d = {}, {} epochs, history {} / target {}.\n\n\
             Split: {}.\n\n\
             Every stage is a `learnrec` command (see `.stages/*.done` for the exact command lines); rerunning `learnrec demo` resumes.",
            match a.data { DataArg::World => "synthetic world", DataArg::Movielens1m => "MovieLens-1M" },
            a.encoder.name(), a.layers, a.d_model, a.epochs, a.history_len, a.target_len,
            match a.data {
                DataArg::World => "global by time — the towers' test targets and the ranker's test rows are the last 7 days, \
                                   exported user embeddings come from the history before them",
                DataArg::Movielens1m => "per user by time (`--split leave-last --target-len 10`, `rank-train --leave-last 10`) — \
                                         each user's last 10 ratings (plus ties) are both the towers' test targets and the ranker's \
                                         test rows; exported user embeddings come from the ratings before them",
            }
        ),
    )];
    sections.push(("Retrieval (paper Table 1 form)".into(), retrieval_table(&out, &rows.iter().map(|r| r.0).collect::<Vec<_>>())?));
    let fe_md = std::fs::read_to_string(fe.join("report.md")).unwrap_or_default();
    sections.push((
        "Ranking: baseline vs LEARN-fused (paper Tables 6/7 form)".into(),
        format!("{fe_md}\n\n[deltas chart](fusion_eval/deltas.svg) · [JSON](fusion_eval/report.json) · [predictions](rank/predictions.csv)"),
    ));
    sections.push((
        "Simulated A/B test".into(),
        "[A/B report (HTML)](ab/report.html) · [Markdown](ab/report.md) · [JSON](ab/report.json)".into(),
    ));
    write_index(&out, "learnrec demo report", &sections)?;
    eprintln!("[demo] finished in {:.1} min; report: {}", t0.elapsed().as_secs_f64() / 60.0, s(&out.join("index.html")));
    Ok(())
}

/// Table 1 form: H@K / R@K per input row, overall and per user / item segment.
fn retrieval_table(out: &Path, labels: &[&str]) -> Result<String> {
    let mut md = String::from("| input | H@50 | R@50 | H@100 | R@100 | R@100 user cold | R@100 user long-tail | R@100 user regular | R@100 item cold | R@100 item long-tail | R@100 item regular |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for label in labels {
        let path = out.join(format!("retrieval_{}.json", label.to_lowercase()));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let at = |rows: &serde_json::Value, k: u64, m: &str| -> String {
            rows.as_array()
                .and_then(|r| r.iter().find(|x| x["k"].as_u64() == Some(k)))
                .and_then(|x| x[m].as_f64())
                .map_or("–".into(), |x| format!("{x:.4}"))
        };
        let seg = |group: &str, name: &str| -> String {
            let g = &v[group][name];
            if g.is_null() { "–".into() } else { format!("{} (n={})", at(&g[1], 100, "recall"), g[0]) }
        };
        let o = &v["overall"];
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            at(o, 50, "hit"), at(o, 50, "recall"), at(o, 100, "hit"), at(o, 100, "recall"),
            seg("by_user_segment", "cold-start"), seg("by_user_segment", "long-tail"), seg("by_user_segment", "regular"),
            seg("by_item_segment", "cold-start"), seg("by_item_segment", "long-tail"), seg("by_item_segment", "regular"),
        );
    }
    md.push_str("\nItem-segment columns are recall over the (user, target item) pairs whose item is in that segment; n counts users or pairs.");
    Ok(md)
}

/// Runs a library step with the same caching as [`run_stage`].
fn run_step(dir: &Path, name: &str, key: &str, outputs: &[PathBuf], f: impl FnOnce() -> Result<()>) -> Result<()> {
    let marker = dir.join(".stages").join(format!("{name}.done"));
    if std::fs::read_to_string(&marker).ok().is_some_and(|k| k == key) && outputs.iter().all(|p| p.exists()) {
        eprintln!("[demo] {name}: cached (delete {} to redo)", marker.display());
        return Ok(());
    }
    eprintln!("[demo] {name}: running");
    let t = Instant::now();
    f().with_context(|| format!("demo stage `{name}` failed"))?;
    learnrec_eval::atomic::write(&marker, key.as_bytes())?;
    eprintln!("[demo] {name}: done in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a stage unless its marker holds the same command line and all its outputs exist.
fn run_stage(dir: &Path, st: &Stage) -> Result<()> {
    let key = st.argv.join(" ");
    run_step(dir, st.name, &key, &st.outputs, || {
        let mut argv = st.argv.clone();
        if st.resume_from.as_ref().is_some_and(|p| p.exists()) {
            argv.push("--resume".into());
        }
        eprintln!("[demo] {}: learnrec {}", st.name, argv.join(" "));
        crate::run_argv(&argv).with_context(|| format!("command: learnrec {}", argv.join(" ")))?;
        for p in &st.outputs {
            anyhow::ensure!(p.exists(), "the stage finished without writing {}", p.display());
        }
        Ok(())
    })
}

/// Writes `index.md` and `index.html` from sections of (title, markdown body).
fn write_index(out: &Path, title: &str, sections: &[(String, String)]) -> Result<()> {
    let mut md = format!("# {title}\n\n");
    for (h, body) in sections {
        let _ = write!(md, "## {h}\n\n{body}\n\n");
    }
    learnrec_eval::atomic::write(&out.join("index.md"), md.as_bytes())?;
    let mut html = format!(
        "<!doctype html><meta charset=utf-8><title>{t}</title><style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}pre{{background:#f6f6f6;padding:1em}}</style><h1>{t}</h1>",
        t = esc(title)
    );
    for (h, body) in sections {
        let _ = write!(html, "<h2>{}</h2>{}", esc(h), md_to_html(body));
    }
    learnrec_eval::atomic::write(&out.join("index.html"), html.as_bytes())?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Just enough Markdown for the report: pipe tables, links on their own line, paragraphs and
/// fenced code.
fn md_to_html(md: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with("```") {
            out.push_str(if in_code { "</pre>" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            let _ = writeln!(out, "{}", esc(line));
            continue;
        }
        let t = line.trim();
        if t.starts_with('|') {
            if t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
                continue;
            }
            if !in_table {
                out.push_str("<table>");
                in_table = true;
            }
            out.push_str("<tr>");
            for cell in t.trim_matches('|').split('|') {
                let _ = write!(out, "<td>{}</td>", inline(cell.trim()));
            }
            out.push_str("</tr>");
            continue;
        }
        if in_table {
            out.push_str("</table>");
            in_table = false;
        }
        if !t.is_empty() {
            let _ = write!(out, "<p>{}</p>", inline(t));
        }
    }
    if in_table {
        out.push_str("</table>");
    }
    if in_code {
        out.push_str("</pre>");
    }
    out
}

/// `[text](href)` links and `**bold**`; everything else escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        let Some(j) = rest[i..].find("](").map(|j| i + j) else { break };
        let Some(k) = rest[j..].find(')').map(|k| j + k) else { break };
        out.push_str(&esc(&rest[..i]));
        let _ = write!(out, "<a href=\"{}\">{}</a>", esc(&rest[j + 2..k]), esc(&rest[i + 1..j]));
        rest = &rest[k + 1..];
    }
    out.push_str(&esc(rest));
    out.replace("**", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_cached_by_key_and_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.txt");
        let mut runs = 0;
        let mut step = |key: &str| {
            run_step(dir.path(), "s", key, std::slice::from_ref(&out), || {
                runs += 1;
                std::fs::write(&out, "x")?;
                Ok(())
            })
            .unwrap()
        };
        step("a");
        step("a");
        step("b");
        drop(step);
        assert_eq!(runs, 2, "same key and outputs present: skipped; new key: rerun");
        std::fs::remove_file(&out).unwrap();
        run_step(dir.path(), "s", "b", std::slice::from_ref(&out), || {
            std::fs::write(&out, "y")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "y", "a missing output reruns the step");
    }

    #[test]
    fn failed_step_leaves_no_marker() {
        let dir = tempfile::tempdir().unwrap();
        let e = run_step(dir.path(), "bad", "k", &[], || anyhow::bail!("boom")).unwrap_err();
        assert!(format!("{e:#}").contains("demo stage `bad` failed: boom"));
        assert!(!dir.path().join(".stages/bad.done").exists());
    }

    #[test]
    fn index_renders_tables_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let sections = vec![("T".to_string(), "| a | b |\n|---|---|\n| 1 | <2> |\n\n[x](ab/report.html)".to_string())];
        write_index(dir.path(), "r", &sections).unwrap();
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(html.contains("<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>&lt;2&gt;</td></tr></table>"), "{html}");
        assert!(html.contains("<a href=\"ab/report.html\">x</a>"));
        assert!(std::fs::read_to_string(dir.path().join("index.md")).unwrap().starts_with("# r"));
    }
}
