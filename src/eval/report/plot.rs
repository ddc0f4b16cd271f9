//! Report plots with plotters, each written as PNG and SVG:
//! - `accuracy_vs_rank.<protocol>`: average accuracy vs rank per method (log2 x axis; the paper's
//!   Fig. 1), error bars = the 95% Student-t interval over seeds (or ±1.96 standard errors of a
//!   single run's average), each point labelled with its effective scale (labels of
//!   coinciding points merged or spread apart, see `labels`);
//! - `loss_curves`: training loss vs step for every run (the paper's Fig. 3);
//! - `val_loss_vs_rank`: final validation loss vs rank per method (mean over seeds).
//!
//! Text in PNGs is drawn with an embedded subset of DejaVu Sans (assets/fonts, licence beside it),
//! registered once as "sans-serif", so plots do not depend on system fonts.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::error::{ReportError, Result};
use super::labels::{self, PointLabel};
use super::run::RunRecord;
use super::table::{Stat, Table};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-subset.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // An invalid font would only make text disappear; the bytes are fixed and tested.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const SIZE: (u32, u32) = (960, 600);

fn color_of(method: &str, i: usize) -> RGBColor {
    match method {
        "lora" => RGBColor(31, 119, 180),
        "dora" => RGBColor(44, 160, 44),
        "rora" => RGBColor(214, 39, 40),
        _ => {
            let c = Palette99::pick(i + 3).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

fn fmt<E: Display>(e: E) -> String {
    e.to_string()
}

/// Something drawable on any backend.
trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Draw `fig` into `<stem>.png` and `<stem>.svg` under `dir`; returns both paths.
fn both(dir: &Path, stem: &str, fig: &impl Figure) -> Result<Vec<PathBuf>> {
    register_font();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        fig.draw(&root)
            .and_then(|_| root.present().map_err(fmt))
            .map_err(|message| ReportError::Plot {
                path: png.clone(),
                message,
            })?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        fig.draw(&root)
            .and_then(|_| root.present().map_err(fmt))
            .map_err(|message| ReportError::Plot {
                path: svg.clone(),
                message,
            })?;
    }
    Ok(vec![png, svg])
}

/// One series: method -> points (rank, mean, sd, scale).
type RankSeries = BTreeMap<String, Vec<(u32, f64, Option<f64>, f64)>>;

fn log2_range(ranks: impl Iterator<Item = u32>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in ranks {
        let x = (r.max(1) as f64).log2();
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    (lo.floor() - 0.5, hi.ceil() + 0.5)
}

fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.15).max(0.5);
    (lo - pad, hi + pad)
}

fn rank_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
        format!("{}", 2u64.pow(x.round() as u32))
    } else {
        String::new()
    }
}

/// A rank-indexed line plot shared by accuracy and validation loss.
struct RankFigure<'a> {
    title: String,
    y_desc: &'a str,
    series: RankSeries,
}

impl Figure for RankFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let (title, y_desc, series) = (&self.title, self.y_desc, &self.series);
        root.fill(&WHITE).map_err(fmt)?;
        let (x0, x1) = log2_range(series.values().flatten().map(|p| p.0));
        let (y0, y1) = y_range(
            series
                .values()
                .flatten()
                .flat_map(|p| [p.1 - p.2.unwrap_or(0.0), p.1 + p.2.unwrap_or(0.0)]),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(fmt)?;
        chart
            .configure_mesh()
            .x_labels(((x1 - x0).round() as usize + 1).max(2))
            .x_label_formatter(&rank_label)
            .x_desc("rank r (log2 scale)")
            .y_desc(y_desc)
            .light_line_style(RGBColor(238, 238, 238))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(fmt)?;
        let mut labels: Vec<PointLabel> = Vec::new();
        for (i, (method, pts)) in series.iter().enumerate() {
            let color = color_of(method, i);
            let xy: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| ((p.0.max(1) as f64).log2(), p.1))
                .collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(3)))
                .map_err(fmt)?
                .label(method.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            chart
                .draw_series(xy.iter().map(|&p| Circle::new(p, 5, color.filled())))
                .map_err(fmt)?;
            // Error bars (sd over seeds): a vertical segment with short caps.
            let cap = (x1 - x0) * 0.008;
            let bars = pts
                .iter()
                .filter_map(|p| p.2.map(|sd| (p, sd)))
                .flat_map(|(p, sd)| {
                    let x = (p.0.max(1) as f64).log2();
                    let (lo, hi) = (p.1 - sd, p.1 + sd);
                    [
                        vec![(x, lo), (x, hi)],
                        vec![(x - cap, lo), (x + cap, lo)],
                        vec![(x - cap, hi), (x + cap, hi)],
                    ]
                    .map(|seg| PathElement::new(seg, color.stroke_width(2)))
                });
            chart.draw_series(bars).map_err(fmt)?;
            labels.extend(pts.iter().map(|p| PointLabel {
                x: (p.0.max(1) as f64).log2() + 0.03,
                y: p.1,
                text: format!("s={:.2}", p.3),
                owners: vec![i],
            }));
        }
        // Labels of coinciding points (e.g. rank 1, where LoRA and RoRA share a scale) are merged
        // when equal and stacked otherwise; one label is about 15 px high and is drawn just above
        // its point, so horizontal lines through the point do not strike it through.
        let plot_h = chart.plotting_area().dim_in_pixel().1.max(1) as f64;
        let gap = (y1 - y0) * 15.0 / plot_h;
        let colors: Vec<RGBColor> = series
            .keys()
            .enumerate()
            .map(|(i, m)| color_of(m, i))
            .collect();
        let texts = labels::place(labels, gap).into_iter().map(|l| {
            let color = match l.owners.as_slice() {
                [one] => colors.get(*one).copied().unwrap_or(BLACK),
                _ => RGBColor(60, 60, 60),
            };
            let font = ("sans-serif", 13)
                .into_font()
                .color(&color)
                .pos(Pos::new(HPos::Left, VPos::Bottom));
            Text::new(l.text, (l.x, l.y + 0.3 * gap), font)
        });
        chart.draw_series(texts).map_err(fmt)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fmt)?;
        Ok(())
    }
}

/// Accuracy (%) vs rank per method, for one table; mean rows carry the sd over seeds.
pub fn accuracy_vs_rank(table: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    // Error bars: the 95% Student-t interval over seeds on mean rows, else ±1.96 standard
    // errors of the run's average.
    let series = rank_series(table, |r| {
        r.average.map(|s| Stat {
            mean: 100.0 * s.mean,
            sd: s
                .ci95
                .or(r.average_se.map(|se| 1.96 * se))
                .map(|x| 100.0 * x),
            ci95: None,
        })
    });
    let title = format!("Average accuracy vs rank ({})", table.protocol.name());
    let stem = format!("accuracy_vs_rank.{}", table.protocol.name());
    both(
        dir,
        &stem,
        &RankFigure {
            title,
            y_desc: "average accuracy (%)",
            series,
        },
    )
}

/// Final validation loss vs rank per method (first table with any validation loss).
pub fn val_loss_vs_rank(table: &Table, dir: &Path) -> Result<Vec<PathBuf>> {
    let series = rank_series(table, |r| r.val_loss.map(|s| Stat { sd: s.ci95, ..s }));
    both(
        dir,
        "val_loss_vs_rank",
        &RankFigure {
            title: "Validation loss vs rank".into(),
            y_desc: "validation loss",
            series,
        },
    )
}

/// Per method, one point per rank: the mean row of a multi-seed group, else the single run.
fn rank_series(table: &Table, value: impl Fn(&super::table::Row) -> Option<Stat>) -> RankSeries {
    let mut series: RankSeries = BTreeMap::new();
    for r in table
        .rows
        .iter()
        .filter(|r| r.seed.is_none() || r.n_seeds == 1)
    {
        let single_of_group = r.seed.is_some()
            && table
                .rows
                .iter()
                .any(|m| m.seed.is_none() && m.method == r.method && m.rank == r.rank);
        if single_of_group {
            continue;
        }
        if let Some(s) = value(r) {
            series.entry(r.method.clone()).or_default().push((
                r.rank,
                s.mean,
                s.sd,
                r.effective_scale,
            ));
        }
    }
    for pts in series.values_mut() {
        pts.sort_by_key(|p| p.0);
    }
    series
}

/// Training loss vs step for every training run that has a curve (a run evaluated under two
/// protocols appears once).
pub fn loss_curves(runs: &[RunRecord], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut seen = std::collections::BTreeSet::new();
    let runs: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| !r.train_loss.is_empty())
        .filter(|r| {
            seen.insert((
                r.method.clone(),
                r.rank,
                r.alpha.to_bits(),
                r.scaling.clone(),
                r.seed,
            ))
        })
        .collect();
    both(dir, "loss_curves", &LossFigure { runs })
}

struct LossFigure<'a> {
    runs: Vec<&'a RunRecord>,
}

impl Figure for LossFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let runs = &self.runs;
        root.fill(&WHITE).map_err(fmt)?;
        let max_step = runs
            .iter()
            .flat_map(|r| r.train_loss.iter().map(|p| p.step))
            .max()
            .unwrap_or(1)
            .max(1);
        let (y0, y1) = y_range(
            runs.iter()
                .flat_map(|r| r.train_loss.iter().map(|p| p.loss)),
        );
        let mut chart = ChartBuilder::on(root)
            .caption("Training loss", ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..max_step as f64, y0.max(0.0)..y1)
            .map_err(fmt)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_label_formatter(&|x| format!("{}", x.round() as i64))
            .light_line_style(RGBColor(238, 238, 238))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(fmt)?;
        for (i, r) in runs.iter().enumerate() {
            let color = color_of(&r.method, i);
            let style = if runs.iter().filter(|o| o.method == r.method).count() > 1 {
                Palette99::pick(i).stroke_width(2)
            } else {
                color.stroke_width(2)
            };
            let label = format!(
                "{} r={} s={:.2} seed {}",
                r.method, r.rank, r.effective_scale, r.seed
            );
            chart
                .draw_series(LineSeries::new(
                    r.train_loss.iter().map(|p| (p.step as f64, p.loss)),
                    style,
                ))
                .map_err(fmt)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fmt)?;
        Ok(())
    }
}
