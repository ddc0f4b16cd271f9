//! Measurements for docs/BENCHMARKS.md, ignored by default:
//! `RAYON_NUM_THREADS=2 cargo test --release --lib model::tests::bench -- --ignored --nocapture --test-threads=1`

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::shared_dir;
use crate::lm::CausalLm;
use crate::model::llama::Llama;
use crate::model::{LoadOptions, ModelSource, RandomSpec, load};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn tokens_per_s(model: &Llama, b: usize, t: usize, reps: usize) -> f64 {
    let v = model.config().vocab_size as u32;
    let data: Vec<u32> = (0..b * t).map(|i| (i as u32 * 7919 + 13) % v).collect();
    let x = Tensor::from_vec(data, (b, t), &Device::Cpu).unwrap();
    let mask = Tensor::ones((b, t), DType::U32, &Device::Cpu).unwrap();
    model.forward(&x, &mask).unwrap(); // warm-up
    let t0 = Instant::now();
    for _ in 0..reps {
        model.forward(&x, &mask).unwrap();
    }
    (b * t * reps) as f64 / t0.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn bench_smollm2_load_and_forward() {
    let p = shared_dir().join("assets/models/smollm2-135m-instruct-q4_1.gguf");
    if !p.exists() {
        eprintln!("SKIP: {} not found", p.display());
        return;
    }
    let rss0 = peak_rss_mb();
    let t0 = Instant::now();
    let m = load(&ModelSource::Gguf(p), &LoadOptions::default()).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "SmolLM2 GGUF -> f32: load {secs:.3}s, peak RSS {:.0} MB (before load {rss0:.0} MB)",
        peak_rss_mb()
    );
    eprintln!(
        "SmolLM2 forward 8x128: {:.0} tokens/s",
        tokens_per_s(&m.model, 8, 128, 2)
    );
}

#[test]
#[ignore]
fn bench_tiny_forward() {
    let m = load(
        &ModelSource::Random(RandomSpec::tiny(0)),
        &LoadOptions::default(),
    )
    .unwrap();
    eprintln!(
        "tiny forward 8x128: {:.0} tokens/s",
        tokens_per_s(&m.model, 8, 128, 20)
    );
}
