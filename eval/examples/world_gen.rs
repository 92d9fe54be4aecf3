//! Benchmark of the synthetic world: generation time and segment proportions.
//! `cargo run --release -p learnrec-eval --example world_gen -- [users items days seed]`

use learnrec_eval::segment::Thresholds;
use learnrec_eval::world::{World, WorldConfig, segment_shares};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<u64> = std::env::args().skip(1).map(|s| s.parse()).collect::<Result<_, _>>()?;
    let d = WorldConfig::default();
    let cfg = WorldConfig {
        users: a.first().map_or(d.users, |&v| v as u32),
        items: a.get(1).map_or(d.items, |&v| v as u32),
        days: a.get(2).map_or(d.days, |&v| v as u32),
        seed: a.get(3).copied().unwrap_or(d.seed),
        ..d
    };
    let t0 = Instant::now();
    let world = World::generate(&cfg)?;
    let t1 = Instant::now();
    let log = world.simulate(None);
    let t2 = Instant::now();
    let dir = std::env::temp_dir().join(format!("learnrec-world-bench-{}", std::process::id()));
    world.write(&dir, &log)?;
    let t3 = Instant::now();
    let count = |a: &str| log.rows.iter().filter(|r| r.action.name() == a).count();
    let (imp, clk, conv) = (count("impression"), count("click"), count("conversion"));
    println!("config: {cfg:?}");
    println!(
        "params {:.2}s, simulate {:.2}s, write {:.2}s, total {:.2}s (threads {})",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        (t3 - t0).as_secs_f64(),
        rayon::current_num_threads()
    );
    println!(
        "rows {}: impressions {imp}, clicks {clk} (CTR {:.3}), conversions {conv} (CVR|click {:.3})",
        log.rows.len(),
        clk as f64 / imp as f64,
        conv as f64 / clk.max(1) as f64
    );
    for f in ["catalog.csv", "interactions.csv", "users.csv", "world.json"] {
        let len = std::fs::metadata(dir.join(f))?.len();
        println!("{f}: {:.1} MB", len as f64 / 1e6);
    }
    let s = segment_shares(&log.rows, world.n_users(), world.n_items(), world.history_end_ts(), &Thresholds::default());
    println!("{s}");
    let h = world.history_end_ts();
    let mut ic = vec![0u64; world.n_items()];
    let mut uc = vec![0u64; world.n_users()];
    for r in log.rows.iter().filter(|r| r.ts < h) {
        match r.action.name() {
            "conversion" => ic[r.item as usize] += 1,
            "click" => uc[r.user as usize] += 1,
            _ => {}
        }
    }
    let early: Vec<u64> =
        ic.iter().zip(&world.items).filter(|(_, it)| it.available_day == 0).map(|(c, _)| *c).collect();
    println!("item conversions (history): {}", quantiles(ic));
    println!("item conversions, day-0 items: {}", quantiles(early));
    println!("user clicks (history): {}", quantiles(uc));
    for i in [0u32, 1, 2] {
        println!("{}", world.item_text(i));
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn quantiles(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    format!(
        "p5 {} p10 {} p25 {} p50 {} p75 {} p90 {} p99 {} max {}",
        q(0.05),
        q(0.1),
        q(0.25),
        q(0.5),
        q(0.75),
        q(0.9),
        q(0.99),
        q(1.0)
    )
}
