//! Placement of point labels (`s=<scale>`) so that labels of coinciding points stay readable.
//!
//! Guarantees, for labels at the same x: identical texts closer than `gap` are merged into one
//! label (its `owners` list every series it stands for), and the remaining labels are moved
//! apart vertically so consecutive ones are at least `gap` apart: a group of overlapping labels
//! is stacked upwards from its lowest label, which keeps its place. Labels at different x are
//! never moved. (The plot draws each label just above its y, so a stack sits above the points.)

/// One label to draw: where (data coordinates), what, and the series it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PointLabel {
    pub x: f64,
    pub y: f64,
    pub text: String,
    /// Indices of the series this label stands for (more than one after a merge).
    pub owners: Vec<usize>,
}

/// Labels at the same x, closer than this in x, are one column.
const SAME_X: f64 = 1e-9;

/// Merge and spread `labels` (see the module docs); `gap` is one label's height in y units.
pub fn place(mut labels: Vec<PointLabel>, gap: f64) -> Vec<PointLabel> {
    labels.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    let mut out = Vec::with_capacity(labels.len());
    let mut start = 0;
    while start < labels.len() {
        let mut end = start + 1;
        while end < labels.len() && (labels[end].x - labels[start].x).abs() < SAME_X {
            end += 1;
        }
        out.extend(spread(merge(labels[start..end].to_vec(), gap), gap));
        start = end;
    }
    out
}

/// One column (sorted by y): labels with the same text closer than `gap` become one, at their
/// mean height.
fn merge(column: Vec<PointLabel>, gap: f64) -> Vec<PointLabel> {
    let mut merged: Vec<(PointLabel, usize)> = Vec::new();
    for l in column {
        let hit = merged
            .iter_mut()
            .find(|(m, n)| m.text == l.text && (m.y / *n as f64 - l.y).abs() < gap);
        match hit {
            Some((m, n)) => {
                m.y += l.y;
                *n += 1;
                m.owners.extend(l.owners);
            }
            None => merged.push((l, 1)),
        }
    }
    let mut v: Vec<PointLabel> = merged
        .into_iter()
        .map(|(mut m, n)| {
            m.y /= n as f64;
            m.owners.sort_unstable();
            m.owners.dedup();
            m
        })
        .collect();
    v.sort_by(|a, b| a.y.total_cmp(&b.y));
    v
}

/// One column (sorted by y): push each label up to at least `gap` above the one below it.
fn spread(mut column: Vec<PointLabel>, gap: f64) -> Vec<PointLabel> {
    for k in 1..column.len() {
        let floor = column[k - 1].y + gap;
        if column[k].y < floor {
            column[k].y = floor;
        }
    }
    column
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(x: f64, y: f64, text: &str, owner: usize) -> PointLabel {
        PointLabel {
            x,
            y,
            text: text.into(),
            owners: vec![owner],
        }
    }

    #[test]
    fn identical_coinciding_labels_merge() {
        // Rank 1: LoRA and RoRA have the same scale alpha/1 and (untrained) the same accuracy.
        let out = place(
            vec![l(0.0, 50.0, "s=2.00", 0), l(0.0, 50.0, "s=2.00", 1)],
            1.0,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].owners, vec![0, 1]);
        assert_eq!(out[0].y, 50.0);
    }

    #[test]
    fn different_coinciding_labels_stack_upwards() {
        let out = place(
            vec![
                l(2.0, 50.0, "s=0.50", 0),
                l(2.0, 50.2, "s=1.00", 1),
                l(2.0, 49.9, "s=0.25", 2),
                l(3.0, 50.0, "s=9.99", 0),
            ],
            1.0,
        );
        assert_eq!(out.len(), 4);
        let col: Vec<&PointLabel> = out.iter().filter(|p| p.x == 2.0).collect();
        for w in col.windows(2) {
            assert!(w[1].y - w[0].y >= 1.0 - 1e-9, "{col:?}");
        }
        // The lowest keeps its place; the others are stacked above it.
        let want = [("s=0.25", 49.9), ("s=0.50", 50.9), ("s=1.00", 51.9)];
        for (p, (text, y)) in col.iter().zip(want) {
            assert_eq!(p.text, text);
            assert!((p.y - y).abs() < 1e-9, "{col:?}");
        }
        // The label in another column keeps its place.
        assert!(out.iter().any(|p| p.x == 3.0 && p.y == 50.0));
    }

    #[test]
    fn far_apart_labels_do_not_move() {
        let input = vec![l(1.0, 10.0, "a", 0), l(1.0, 20.0, "b", 1)];
        assert_eq!(place(input.clone(), 1.0), input);
    }

    #[test]
    fn a_stack_that_reaches_a_neighbour_pushes_it_too() {
        let out = place(
            vec![
                l(0.0, 0.0, "a", 0),
                l(0.0, 0.0, "b", 1),
                l(0.0, 0.0, "c", 2),
                l(0.0, 1.6, "d", 3),
            ],
            1.0,
        );
        for w in out.windows(2) {
            assert!(w[1].y - w[0].y >= 1.0 - 1e-9, "{out:?}");
        }
    }
}
