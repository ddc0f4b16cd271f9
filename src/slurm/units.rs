//! Sizes, durations and rates as a Slurm user writes them, for the profile, the flags and a
//! stage's `resources` (a leaf: the checker parses `resources` with these too).

/// Memory as Slurm writes it: `4096` (MiB), `512M`, `64G`, `1T` (binary units; `64GB` and
/// `64GiB` mean the same) -> bytes.
pub fn parse_mem(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix('B'))
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 20),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok((x * (1u64 << shift) as f64).round() as u64),
        _ => Err(format!(
            "mem `{text}`: expected a size such as `64G` or `4096` (MiB)"
        )),
    }
}

/// `90`, `90m`, `4h`, `1day 2h` -> minutes (at least 1). A bare number is minutes, as in Slurm.
pub fn parse_minutes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if let Ok(m) = t.parse::<u64>() {
        return Ok(m.max(1));
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        format!("time `{t}`: expected a duration such as `48h`, `90m` or minutes ({e})")
    })?;
    Ok(d.as_secs().div_ceil(60).max(1))
}

/// `2.5T`, `350e12`, `80 TFLOP/s` -> FLOP/s.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("FLOP/s")
        .or_else(|| t.strip_suffix("flop/s"))
        .unwrap_or(t)
        .trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if "KMGTP".contains(c.to_ascii_uppercase()) && i > 0 => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1e3,
                'M' => 1e6,
                'G' => 1e9,
                'T' => 1e12,
                _ => 1e15,
            };
            (&t[..i], m)
        }
        _ => (t, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x * mult),
        _ => Err(format!(
            "rate `{text}`: expected FLOP/s such as `2.5T` or `350e12`"
        )),
    }
}
