//! Dumps GGUF tensors dequantised to f32 (stored layout, no name mapping) as raw little-endian
//! files, for cross-checking against another implementation (e.g. gguf-py's `dequantize`).
//!
//! `cargo run -p learnrec-model --example gguf_dump -- FILE.gguf OUT_DIR TENSOR...`

use learnrec_model::gguf::GgufFile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: gguf_dump FILE.gguf OUT_DIR TENSOR...".into());
    }
    let g = GgufFile::open(&args[0])?;
    std::fs::create_dir_all(&args[1])?;
    for name in &args[2..] {
        let t = g.read_raw(name)?;
        let bytes: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(
            std::path::Path::new(&args[1]).join(format!("{name}.f32")),
            bytes,
        )?;
        let ty = g.tensor_info(name).map(|i| i.ty.name()).unwrap_or_default();
        println!("{name}\t{ty}\t{:?}", t.shape);
    }
    Ok(())
}
