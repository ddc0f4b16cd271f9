//! Report tables from fixture runs (expected text written by hand: means and sample sds of the
//! fixture numbers), and plots that are real PNG/SVG files with content.

use std::collections::BTreeMap;

use super::*;
use crate::eval::results::Protocol;

fn run(
    method: &str,
    rank: u32,
    scaling: &str,
    scale: f64,
    seed: u64,
    acc: &[(&str, f64)],
    val: Option<f64>,
) -> RunRecord {
    RunRecord {
        name: format!("{method}-{rank}-{seed}"),
        method: method.into(),
        rank,
        alpha: 16.0,
        scaling: scaling.into(),
        effective_scale: scale,
        seed,
        protocol: Protocol::LlmAdapters,
        accuracies: acc
            .iter()
            .map(|(t, a)| (t.to_string(), *a))
            .collect::<BTreeMap<_, _>>(),
        // Three-decimal losses, which JSON round-trips exactly.
        train_loss: (1..=20)
            .map(|s| LossPoint {
                step: s,
                loss: (3000.0 / (s as f64).sqrt()).round() / 1000.0 + rank as f64 / 100.0,
            })
            .collect(),
        val_loss: val,
    }
}

fn fixture() -> Vec<RunRecord> {
    let mut loglik = run(
        "rora",
        8,
        "rora",
        16.0 / 8f64.sqrt(),
        1,
        &[("boolq", 0.55)],
        None,
    );
    loglik.protocol = Protocol::Loglik;
    vec![
        run(
            "rora",
            16,
            "rora",
            4.0,
            1,
            &[("piqa", 0.8), ("boolq", 0.7)],
            Some(1.25),
        ),
        run(
            "lora",
            8,
            "lora",
            2.0,
            2,
            &[("boolq", 0.62), ("piqa", 0.74)],
            None,
        ),
        run("dora", 8, "lora", 2.0, 1, &[("boolq", 0.64)], None),
        run(
            "rora",
            8,
            "rora",
            16.0 / 8f64.sqrt(),
            1,
            &[("boolq", 0.66), ("piqa", 0.71)],
            None,
        ),
        run(
            "lora",
            8,
            "lora",
            2.0,
            1,
            &[("boolq", 0.60), ("piqa", 0.70)],
            Some(1.5),
        ),
        loglik,
    ]
}

#[test]
fn markdown_table_rows_method_rank_seed_with_mean_and_sd() {
    let md = render_markdown(&build_tables(&fixture()));
    let want = "\
### Accuracy (%), protocol `llm-adapters`

Scale = effective adapter scale (lora: α/r, rora: α/√r); mean rows: mean ± sd over seeds.

| Method | Rank | α | Scale | Seed | BoolQ | PIQA | Avg | Val loss |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| lora | 8 | 16 | 2.000 (lora) | 1 | 60.0 | 70.0 | 65.0 | 1.5000 |
| lora | 8 | 16 | 2.000 (lora) | 2 | 62.0 | 74.0 | 68.0 | – |
| lora | 8 | 16 | 2.000 (lora) | mean (n=2) | 61.0 ± 1.4 | 72.0 ± 2.8 | **66.5 ± 2.1** | 1.5000 |
| dora | 8 | 16 | 2.000 (lora) | 1 | 64.0 | – | 64.0 | – |
| rora | 8 | 16 | 5.657 (rora) | 1 | 66.0 | 71.0 | 68.5 | – |
| rora | 16 | 16 | 4.000 (rora) | 1 | 70.0 | 80.0 | 75.0 | 1.2500 |

### Accuracy (%), protocol `loglik`

Scale = effective adapter scale (lora: α/r, rora: α/√r); mean rows: mean ± sd over seeds.

| Method | Rank | α | Scale | Seed | BoolQ | Avg | Val loss |
|---|---:|---:|---:|---:|---:|---:|---:|
| rora | 8 | 16 | 5.657 (rora) | 1 | 55.0 | 55.0 | – |

";
    assert_eq!(md, want);
}

#[test]
fn csv_has_sd_columns_and_blank_seed_on_mean_rows() {
    let csv = render_csv(&build_tables(&fixture()));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "protocol,method,rank,alpha,scaling,effective_scale,seed,n_seeds,boolq,boolq_sd,piqa,piqa_sd,average,average_sd,val_loss,val_loss_sd"
    );
    assert_eq!(
        lines[1],
        "llm-adapters,lora,8,16,lora,2.000000,1,1,60.00,,70.00,,65.00,,1.500000,"
    );
    assert_eq!(
        lines[3],
        "llm-adapters,lora,8,16,lora,2.000000,,2,61.00,1.41,72.00,2.83,66.50,2.12,1.500000,"
    );
    assert_eq!(
        lines[4],
        "llm-adapters,dora,8,16,lora,2.000000,1,1,64.00,,,,64.00,,,"
    );
    assert_eq!(
        lines[7],
        "loglik,rora,8,16,rora,5.656854,1,1,55.00,,,,55.00,,,"
    );
    assert_eq!(lines.len(), 8);
}

#[test]
fn report_writes_tables_runs_and_valid_plots() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture();
    let files = write_report(&runs, dir.path()).unwrap();
    if let Some(keep) = std::env::var_os("RORA_KEEP_PLOTS") {
        write_report(&runs, std::path::Path::new(&keep)).unwrap();
    }
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "table.md",
        "table.csv",
        "table.json",
        "runs.json",
        "accuracy_vs_rank.llm-adapters.png",
        "accuracy_vs_rank.llm-adapters.svg",
        "accuracy_vs_rank.loglik.png",
        "loss_curves.png",
        "loss_curves.svg",
        "val_loss_vs_rank.png",
        "val_loss_vs_rank.svg",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // runs.json round-trips (serde_json's default float parsing may differ in the last bit).
    let back = load_runs_file(&dir.path().join("runs.json")).unwrap();
    assert_eq!(back.len(), runs.len());
    for (a, b) in back.iter().zip(&runs) {
        assert_eq!(
            (&a.name, &a.accuracies, a.protocol, a.val_loss),
            (&b.name, &b.accuracies, b.protocol, b.val_loss)
        );
        assert!(
            a.train_loss
                .iter()
                .zip(&b.train_loss)
                .all(|(x, y)| x.step == y.step && (x.loss - y.loss).abs() < 1e-12)
        );
    }
    let tables: Vec<Table> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("table.json")).unwrap())
            .unwrap();
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0].rows.len(), build_tables(&runs)[0].rows.len());
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
    {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f:?}");
        // IHDR: width and height big-endian at bytes 16..24.
        assert_eq!(
            &bytes[16..24],
            &[0, 0, 3, 0xC0, 0, 0, 2, 0x58],
            "{f:?} is 960x600"
        );
        // A blank 960x600 PNG is ~3 KB; lines and text make it much larger.
        assert!(bytes.len() > 12_000, "{f:?}: {} bytes", bytes.len());
    }
    let svg =
        std::fs::read_to_string(dir.path().join("accuracy_vs_rank.llm-adapters.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline"));
    let texts = svg_texts(&svg);
    for want in [
        "rora",
        "lora",
        "dora",
        "s=5.66",
        "s=4.00",
        "rank r (log2 scale)",
        "8",
        "16",
    ] {
        assert!(
            texts.iter().any(|t| t == want),
            "{want} missing in accuracy SVG texts {texts:?}"
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("loss_curves.svg")).unwrap();
    let texts = svg_texts(&svg);
    assert!(
        texts.iter().any(|t| t == "rora r=16 s=4.00 seed 1"),
        "{texts:?}"
    );
    // Five training runs (the run evaluated under both protocols is drawn once).
    assert_eq!(texts.iter().filter(|t| t.contains(" seed ")).count(), 5);
}

/// The text content of every `<text>` element.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            Some(
                t.split_once('>')?
                    .1
                    .split_once("</text>")?
                    .0
                    .trim()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn the_embedded_font_registers() {
    let font: &'static [u8] = include_bytes!("../../../assets/fonts/DejaVuSans-subset.ttf");
    assert!(
        plotters::style::register_font("rora-test-font", plotters::style::FontStyle::Normal, font)
            .is_ok()
    );
}
