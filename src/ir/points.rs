//! Sweep points. Axes in different groups combine as a cartesian product; axes of one `zip` group
//! advance together. A stage's points range only over the axes it (transitively) uses, restricted
//! to those axes and de-duplicated, so stages that do not use an axis are shared across it.

use std::collections::BTreeSet;

use super::Axis;
use super::bind::Point;

/// Points over `used` axes, in declaration order (first axis slowest). `None` if more than `cap`.
pub fn points(axes: &[Axis], used: &BTreeSet<String>, cap: usize) -> Option<Vec<Point>> {
    let mut groups: Vec<usize> = axes
        .iter()
        .filter(|a| used.contains(&a.name))
        .map(|a| a.group)
        .collect();
    groups.dedup();
    let mut seen_groups = BTreeSet::new();
    groups.retain(|g| seen_groups.insert(*g));
    let mut out: Vec<Point> = vec![Point::new()];
    for g in groups {
        let members: Vec<&Axis> = axes
            .iter()
            .filter(|a| a.group == g && used.contains(&a.name))
            .collect();
        let n = members.iter().map(|a| a.values.len()).min().unwrap_or(0);
        let mut subs: Vec<Point> = vec![];
        for i in 0..n {
            let p: Point = members
                .iter()
                .map(|a| (a.name.clone(), a.values[i].0.clone()))
                .collect();
            if !subs.contains(&p) {
                subs.push(p);
            }
        }
        if out.len().saturating_mul(subs.len()) > cap {
            return None;
        }
        out = out
            .iter()
            .flat_map(|base| {
                subs.iter().map(move |s| {
                    let mut p = base.clone();
                    p.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
                    p
                })
            })
            .collect();
    }
    Some(out)
}

/// `rank=8,method=lora` (axis order of the map; empty for the shared point).
pub fn label(p: &Point) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Value;
    use crate::source::Span;

    fn axis(name: &str, vals: &[i64], group: usize) -> Axis {
        Axis {
            name: name.into(),
            span: Span::default(),
            values: vals
                .iter()
                .map(|v| (Value::Int(*v), Span::default()))
                .collect(),
            group,
        }
    }

    #[test]
    fn cartesian_across_groups_zipped_within_and_restricted() {
        let axes = vec![
            axis("rank", &[4, 8], 0),
            axis("seed", &[1, 2, 3], 1),
            axis("alpha", &[8, 16], 0),
        ];
        let all: BTreeSet<String> = ["rank", "seed", "alpha"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = points(&axes, &all, 100).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(label(&p[1]), "alpha=8,rank=4,seed=2");
        let only_seed: BTreeSet<String> = ["seed".to_string()].into();
        assert_eq!(points(&axes, &only_seed, 100).unwrap().len(), 3);
        assert_eq!(
            points(&axes, &BTreeSet::new(), 100).unwrap(),
            vec![Point::new()]
        );
        assert!(points(&axes, &all, 5).is_none());
    }
}
