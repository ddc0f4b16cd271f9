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
        params_pct: None,
        train_seconds: None,
        outcomes: BTreeMap::new(),
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
    let mut r16 = run(
        "rora",
        16,
        "rora",
        4.0,
        1,
        &[("piqa", 0.8), ("boolq", 0.7)],
        Some(1.25),
    );
    r16.params_pct = Some(0.0622);
    r16.train_seconds = Some(12.5);
    vec![
        r16,
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

Scale = effective adapter scale (lora: α/r, rora: α/√r); mean rows: mean ± half-width of the 95% Student-t interval over seeds; # Params = trainable / all parameters.

| Method | Rank | α | Scale | Seed | BoolQ | PIQA | Avg | Val loss | # Params (%) | Train (s) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| lora | 8 | 16 | 2.000 (lora) | 1 | 60.0 | 70.0 | 65.0 | 1.5000 | – | – |
| lora | 8 | 16 | 2.000 (lora) | 2 | 62.0 | 74.0 | 68.0 | – | – | – |
| lora | 8 | 16 | 2.000 (lora) | mean (n=2) | 61.0 ± 12.7 | 72.0 ± 25.4 | **66.5 ± 19.1** | 1.5000 | – | – |
| dora | 8 | 16 | 2.000 (lora) | 1 | 64.0 | – | 64.0 | – | – | – |
| rora | 8 | 16 | 5.657 (rora) | 1 | 66.0 | 71.0 | 68.5 | – | – | – |
| rora | 16 | 16 | 4.000 (rora) | 1 | 70.0 | 80.0 | 75.0 | 1.2500 | 0.0622 | 12.5 |

### Accuracy (%), protocol `loglik`

Scale = effective adapter scale (lora: α/r, rora: α/√r); mean rows: mean ± half-width of the 95% Student-t interval over seeds; # Params = trainable / all parameters.

| Method | Rank | α | Scale | Seed | BoolQ | Avg | Val loss | # Params (%) | Train (s) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| rora | 8 | 16 | 5.657 (rora) | 1 | 55.0 | 55.0 | – | – | – |

";
    assert_eq!(md, want);
}

#[test]
fn csv_has_sd_columns_and_blank_seed_on_mean_rows() {
    let csv = render_csv(&build_tables(&fixture()));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "protocol,method,rank,alpha,scaling,effective_scale,seed,n_seeds,boolq,boolq_sd,piqa,piqa_sd,average,average_sd,val_loss,val_loss_sd,params_pct,train_seconds"
    );
    assert_eq!(
        lines[1],
        "llm-adapters,lora,8,16,lora,2.000000,1,1,60.00,,70.00,,65.00,,1.500000,,,"
    );
    assert_eq!(
        lines[3],
        "llm-adapters,lora,8,16,lora,2.000000,,2,61.00,1.41,72.00,2.83,66.50,2.12,1.500000,,,"
    );
    assert_eq!(
        lines[4],
        "llm-adapters,dora,8,16,lora,2.000000,1,1,64.00,,,,64.00,,,,,"
    );
    assert_eq!(
        lines[7],
        "loglik,rora,8,16,rora,5.656854,1,1,55.00,,,,55.00,,,,,"
    );
    assert_eq!(lines.len(), 8);
}

#[test]
fn report_writes_tables_runs_and_valid_plots() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture();
    let files = write_report(&runs, &compare(), dir.path()).unwrap();
    if let Some(keep) = std::env::var_os("RORA_KEEP_PLOTS") {
        write_report(&runs, &compare(), std::path::Path::new(&keep)).unwrap();
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

fn compare() -> crate::eval::report::Compare {
    crate::stages::report::default_compare()
}

fn with_outcomes(mut r: RunRecord, task: &str, ids: &[&str], correct: &[bool]) -> RunRecord {
    r.outcomes.insert(
        task.to_string(),
        Outcomes {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            correct: correct.to_vec(),
        },
    );
    r
}

/// rora vs lora at rank 8 over two seeds, on 40 items per task: rora right on every item, lora
/// on the even ones. Expected by hand: each task's difference is 1 - 20/40 = 0.5; a bootstrap of
/// per-item differences that are 0 or 1 in equal numbers cannot reach 0 at 10000 resamples, so
/// the intervals exclude 0; the mean over seeds of two equal differences has a zero-width
/// t interval. Items are matched by id (lora's file order is reversed, one extra item each).
#[test]
fn paired_differences_match_items_by_id_and_mark_intervals_excluding_zero() {
    let ids: Vec<String> = (0..40).map(|i| format!("q{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut lora_ids: Vec<&str> = ids.iter().rev().copied().collect();
    lora_ids.push("extra");
    let lora_ok: Vec<bool> = lora_ids
        .iter()
        .map(|id| {
            id.trim_start_matches('q')
                .parse::<u32>()
                .is_ok_and(|n| n % 2 == 0)
        })
        .collect();
    let mut runs = vec![];
    for seed in [1, 2] {
        let mut r = run(
            "rora",
            8,
            "rora",
            5.657,
            seed,
            &[("boolq", 1.0), ("piqa", 1.0)],
            None,
        );
        let mut l = run(
            "lora",
            8,
            "lora",
            2.0,
            seed,
            &[("boolq", 0.5), ("piqa", 0.5)],
            None,
        );
        for t in ["boolq", "piqa"] {
            r = with_outcomes(r, t, &ids, &[true; 40]);
            l = with_outcomes(l, t, &lora_ids, &lora_ok);
        }
        runs.extend([r, l]);
    }
    let tables = build_tables(&runs);
    let tasks_of = tables
        .iter()
        .map(|t| (t.protocol, t.tasks.clone()))
        .collect();
    let compare = compare();
    let paired = build_paired(&runs, &tasks_of, &compare);
    assert_eq!(paired.len(), 1);
    let t = &paired[0];
    assert_eq!(t.rows.len(), 3, "{:?}", t.rows);
    for r in &t.rows[..2] {
        assert_eq!(r.items, vec![Some(40), Some(40)]);
        for iv in r.tasks.iter().flatten().chain(r.average.iter()) {
            assert!((iv.estimate - 0.5).abs() < 1e-12, "{iv:?}");
            assert!(iv.excludes_zero() && iv.lo <= 0.5 && iv.hi >= 0.5, "{iv:?}");
        }
    }
    let mean = &t.rows[2];
    assert_eq!(
        (mean.seed, mean.method_of_interval.as_str()),
        (None, "t-over-seeds")
    );
    let avg = mean.average.unwrap();
    assert_eq!((avg.estimate, avg.lo, avg.hi), (0.5, 0.5, 0.5));
    let md = render_paired_markdown(&paired);
    assert!(md.contains("### Difference vs `lora`"), "{md}");
    assert!(md.contains("paired bootstrap"), "{md}");
    assert!(md.contains("| rora | 8 | 1 | lora r8 s1 | +50.0 ["), "{md}");
    assert!(md.contains("] * |"), "{md}");
    // The average of a single run gets ±1.96 s.e. error bars: lora's run has 20 of 41 items
    // right per task, lm-eval's stderr sqrt(p (1 - p) / (n - 1)) with p = 20/41, n = 41.
    let lora = tables[0]
        .rows
        .iter()
        .find(|r| r.method == "lora" && r.seed == Some(1))
        .unwrap();
    let p = 20.0f64 / 41.0;
    let se = (p * (1.0 - p) / 40.0).sqrt();
    let want = (2.0 * se * se).sqrt() / 2.0;
    assert!((lora.average_se.unwrap() - want).abs() < 1e-12);
}
