//! Times the readers, the sequence split and the stats on MovieLens-1M (or on a dataset
//! directory given as the first argument): `cargo run -p learnrec-eval --example bench_readers`.

use learnrec_eval::data::reader::{CatalogOptions, InteractionOptions, dataset_files, read_catalog, read_interactions};
use learnrec_eval::split::{SequenceSplit, boundary_before_end, user_sequences};
use learnrec_eval::stats::{StatsConfig, dataset_stats};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| learnrec_eval::assets::path_of(learnrec_eval::assets::Asset::Movielens1m));
    let (cat_path, inter_path) = dataset_files(&dir)?;
    let t = Instant::now();
    let catalog = read_catalog(&cat_path, &CatalogOptions::default())?;
    println!("read_catalog       {:>8.3} s  {} items", t.elapsed().as_secs_f64(), catalog.len());
    let t = Instant::now();
    let log = read_interactions(&inter_path, Some(&catalog), &InteractionOptions::default())?;
    println!(
        "read_interactions  {:>8.3} s  {} rows, {} users",
        t.elapsed().as_secs_f64(),
        log.rows.len(),
        log.users.len()
    );
    let boundary = boundary_before_end(&log, 30).ok_or("empty log")?;
    let t = Instant::now();
    let seqs = user_sequences(&log, &SequenceSplit::paper(boundary));
    println!("user_sequences     {:>8.3} s  {} users", t.elapsed().as_secs_f64(), seqs.len());
    let t = Instant::now();
    let s = dataset_stats(Some(&catalog), &log, &StatsConfig::paper(boundary));
    println!("dataset_stats      {:>8.3} s  {} users with a target", t.elapsed().as_secs_f64(), s.users_with_target);
    Ok(())
}
