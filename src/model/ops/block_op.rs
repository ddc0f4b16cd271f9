//! A whole decoder layer as one graph node for training with a frozen base (CPU, f32).
//!
//! Through candle's autograd a layer is ~40 graph nodes; each allocates its output, and backward
//! gives every node input a zero-filled gradient buffer that the incoming gradient is added into.
//! [`block_forward`] runs the layer (RMSNorm, q/k/v with RoPE, grouped-query attention, o, RMSNorm,
//! SwiGLU MLP, both residuals) as one [`CustomOp2`] of the input `x` and one packed vector of the
//! layer's adapter parameters. Its forward keeps what the backward needs; its backward computes `dx`
//! and only the adapter gradients (`dA`, `dB`, DoRA's `dm`), never a gradient of a frozen weight,
//! and skips the input gradient of the first layer (nothing upstream needs it).
//!
//! When it runs: CPU, f32 everywhere, no KV cache, no projection bias, every unmerged adapter
//! training ([`crate::adapter::linear::FusedParts`]: LoRA with any dropout, DoRA without), at
//! least one adapter in the layer. LoRA dropout masks are drawn from each adapter's stream when
//! the op is built, one per adapter and forward, exactly as the composed path draws them.
//! Otherwise (and with [`LayerPath::Composed`], and inside [`with_reference_path`]) [`block_forward`]
//! says why ([`Unfused`]) and the layer is composed from candle ops; [`LayerPathLog`] counts which
//! path the training forwards of a model took, so a train job can say so in its summary. Guarantees: loss and gradients equal the composed path within f32 rounding
//! (`block_tests`, 1e-5 relative); results do not depend on the number of threads.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, Var};

use crate::cpu::block_kernels::{
    Heads, attn_bwd, attn_fwd, from_heads, rms_bwd, rms_fwd, swiglu_bwd, swiglu_fwd, to_heads,
};
use crate::cpu::block_proj::{AdapterSlot, ProjSaved, ProjShape};
use crate::cpu::fused::data;
use crate::model::block::Block;
use crate::model::rope::Positions;

thread_local! {
    static REFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// Whether [`with_reference_path`] is in force on this thread.
pub fn reference_path_active() -> bool {
    REFERENCE.with(|c| c.get())
}

/// Run `f` with the fused layer disabled on this thread (the composed autograd path; tests).
pub fn with_reference_path<R>(f: impl FnOnce() -> R) -> R {
    let before = REFERENCE.with(|c| c.replace(true));
    let out = f();
    REFERENCE.with(|c| c.set(before));
    out
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// How many fused layer forwards this process has run (tests check that the path was taken).
#[cfg(test)]
pub fn fused_layer_runs() -> u64 {
    RUNS.load(Ordering::Relaxed)
}

/// Which implementation a model's training forwards use for a decoder layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LayerPath {
    /// The fused op wherever it applies, else the composed candle ops.
    #[default]
    Auto,
    /// Always the composed candle ops (A/B measurements; same results up to f32 rounding).
    Composed,
}

/// Why a layer forward ran composed instead of fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unfused {
    /// [`LayerPath::Composed`] was asked for (or a test's reference path).
    Asked,
    /// A tensor is not an f32 tensor on the CPU (GPU, bf16 or f16 compute).
    NotCpuF32,
    /// A projection has a bias.
    ProjectionBias,
    /// An adapter has no fused form here: it is in eval mode (validation forwards), or it is DoRA
    /// with dropout.
    AdapterNotFusable,
    /// An adapter's or the layer's shapes are not the ones the op handles.
    Shapes,
    /// No adapter in the layer is training (merged, or none attached).
    NoTrainingAdapter,
}

impl Unfused {
    /// Whether the reason holds for every forward of a training run (the layer's weights,
    /// adapters and the asked path), so the layer can decide once; `Shapes` can depend on a batch.
    pub fn is_static(self) -> bool {
        !matches!(self, Unfused::Shapes)
    }

    /// The reason as a small number (for atomics), and back.
    pub fn code(self) -> u8 {
        // `ALL` lists the variants in declaration order (tested)
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Unfused> {
        Unfused::ALL.get(usize::from(code)).copied()
    }

    const ALL: [Unfused; 6] = [
        Unfused::Asked,
        Unfused::NotCpuF32,
        Unfused::ProjectionBias,
        Unfused::AdapterNotFusable,
        Unfused::Shapes,
        Unfused::NoTrainingAdapter,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Unfused::Asked => "the composed path was asked for",
            Unfused::NotCpuF32 => "the fused layer runs only f32 on the CPU",
            Unfused::ProjectionBias => "a projection has a bias",
            Unfused::AdapterNotFusable => {
                "an adapter has no fused form here (in eval mode, as in validation forwards, or DoRA with dropout)"
            }
            Unfused::Shapes => "the layer's shapes are not ones the fused op handles",
            Unfused::NoTrainingAdapter => "no adapter of the layer is training",
        }
    }
}

/// Counts of the paths a model's layer forwards took (training forwards: no KV cache).
#[derive(Debug, Default)]
pub struct LayerPathLog {
    fused: AtomicU64,
    composed: AtomicU64,
    /// `Unfused::code + 1` of the first composed forward; 0 while there was none.
    first_reason: AtomicU8,
}

/// What a [`LayerPathLog`] saw, as a train job's summary records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPathReport {
    /// `fused`, `composed` or `mixed` (`none`: no layer forward was logged).
    pub path: &'static str,
    pub fused_forwards: u64,
    pub composed_forwards: u64,
    /// Why the first composed forward was not fused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composed_because: Option<&'static str>,
}

impl LayerPathLog {
    pub fn record(&self, outcome: std::result::Result<(), Unfused>) {
        match outcome {
            Ok(()) => {
                self.fused.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                self.composed.fetch_add(1, Ordering::Relaxed);
                let _ = self.first_reason.compare_exchange(
                    0,
                    why.code() + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    pub fn reset(&self) {
        self.fused.store(0, Ordering::Relaxed);
        self.composed.store(0, Ordering::Relaxed);
        self.first_reason.store(0, Ordering::Relaxed);
    }

    pub fn report(&self) -> LayerPathReport {
        let (fused, composed) = (
            self.fused.load(Ordering::Relaxed),
            self.composed.load(Ordering::Relaxed),
        );
        let reason = self.first_reason.load(Ordering::Relaxed);
        LayerPathReport {
            path: match (fused > 0, composed > 0) {
                (true, false) => "fused",
                (false, true) => "composed",
                (true, true) => "mixed",
                (false, false) => "none",
            },
            fused_forwards: fused,
            composed_forwards: composed,
            composed_because: reason
                .checked_sub(1)
                .and_then(Unfused::from_code)
                .map(Unfused::describe),
        }
    }
}

/// Projection order inside the op: q, k, v, o, gate, up, down.
const Q: usize = 0;
const K: usize = 1;
const V: usize = 2;
const O: usize = 3;
const GATE: usize = 4;
const UP: usize = 5;
const DOWN: usize = 6;

struct Saved {
    xn1: Vec<f32>,
    inv1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    x2: Vec<f32>,
    xn2: Vec<f32>,
    inv2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
    projs: Vec<ProjSaved>,
}

struct LayerOp {
    /// Frozen weights: the seven projections, then the two norms.
    weights: Vec<Tensor>,
    projs: [ProjShape; 7],
    heads: Heads,
    hidden: usize,
    eps: f32,
    /// `[b, t, d]` each, and the attention bias `[b, t, t]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    bias: Vec<f32>,
    /// Per projection: the adapter branch's dropout mask `[rows, in]` for this forward (LoRA
    /// with dropout), drawn when the op is built.
    masks: Vec<Option<Vec<f32>>>,
    saved: Mutex<Option<Saved>>,
}

/// The CPU f32 data of each tensor, read-locked while `f` runs.
fn with_data<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(ts.len());
    for (g, l) in &guards {
        let candle_core::Storage::Cpu(s) = &**g else {
            candle_core::bail!("fused layer: a weight is not on the CPU");
        };
        slices.push(data::<f32>("fused layer", s, l)?);
    }
    f(&slices)
}

impl LayerOp {
    fn rows(&self) -> usize {
        self.heads.b * self.heads.t
    }

    fn mask(&self, i: usize) -> Option<&[f32]> {
        self.masks.get(i).and_then(|m| m.as_deref())
    }

    fn run_forward(&self, x: &[f32], p: &[f32], w: &[&[f32]]) -> Result<(Vec<f32>, Saved)> {
        let (rows, s) = (self.rows(), self.heads);
        let pr = &self.projs;
        let (xn1, inv1) = rms_fwd(x, w[7], self.eps);
        let (q, sq) = pr[Q].forward(w[Q], p, &xn1, rows, self.mask(Q))?;
        let (k, sk) = pr[K].forward(w[K], p, &xn1, rows, self.mask(K))?;
        let (v, sv) = pr[V].forward(w[V], p, &xn1, rows, self.mask(V))?;
        let rope = Some((&self.cos[..], &self.sin[..]));
        let q = to_heads(&q, s, s.h, rope);
        let k = to_heads(&k, s, s.kvh, rope);
        let v = to_heads(&v, s, s.kvh, None);
        let scale = 1.0 / (s.d as f32).sqrt();
        let (probs, ctx) = attn_fwd(&q, &k, &v, &self.bias, s, scale)?;
        let ctx = from_heads(&ctx, s, s.h, None);
        let (o, so) = pr[O].forward(w[O], p, &ctx, rows, self.mask(O))?;
        let mut x2 = o;
        x2.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
        let (xn2, inv2) = rms_fwd(&x2, w[8], self.eps);
        let (gate, sg) = pr[GATE].forward(w[GATE], p, &xn2, rows, self.mask(GATE))?;
        let (up, su) = pr[UP].forward(w[UP], p, &xn2, rows, self.mask(UP))?;
        let act = swiglu_fwd(&gate, &up);
        let (down, sd) = pr[DOWN].forward(w[DOWN], p, &act, rows, self.mask(DOWN))?;
        let mut y = down;
        y.iter_mut().zip(&x2).for_each(|(a, &b)| *a += b);
        let saved = Saved {
            xn1,
            inv1,
            q,
            k,
            v,
            probs,
            ctx,
            x2,
            xn2,
            inv2,
            gate,
            up,
            act,
            projs: vec![sq, sk, sv, so, sg, su, sd],
        };
        Ok((y, saved))
    }

    /// `(dx, dp)` for the output gradient `g`; `dx` only when `want_dx`.
    fn run_backward(
        &self,
        st: Saved,
        x: &[f32],
        p: &[f32],
        w: &[&[f32]],
        g: &[f32],
        want_dx: bool,
    ) -> Result<(Option<Vec<f32>>, Vec<f32>)> {
        let (rows, s, hs) = (self.rows(), self.heads, self.hidden);
        let pr = &self.projs;
        let mut dp = vec![0f32; p.len()];
        let mut ps = st.projs.into_iter();
        let mut next = || ps.next().unwrap_or_default();
        let (sq, sk, sv, so, sg, su, sd) = (next(), next(), next(), next(), next(), next(), next());
        // MLP
        let mut dact = vec![0f32; rows * pr[DOWN].inp];
        pr[DOWN].backward(
            w[DOWN],
            p,
            sd,
            &st.act,
            g,
            rows,
            Some((&mut dact, false)),
            &mut dp,
            self.mask(DOWN),
        )?;
        drop(st.act);
        let (dgate, dup) = swiglu_bwd(&st.gate, &st.up, &dact);
        drop((dact, st.gate, st.up));
        let mut dxn2 = vec![0f32; rows * hs];
        let (xn2, x2) = (&st.xn2, &st.x2);
        pr[GATE].backward(
            w[GATE],
            p,
            sg,
            xn2,
            &dgate,
            rows,
            Some((&mut dxn2, false)),
            &mut dp,
            self.mask(GATE),
        )?;
        pr[UP].backward(
            w[UP],
            p,
            su,
            xn2,
            &dup,
            rows,
            Some((&mut dxn2, true)),
            &mut dp,
            self.mask(UP),
        )?;
        drop((dgate, dup));
        let mut dx2 = g.to_vec();
        rms_bwd(x2, &st.inv2, w[8], &dxn2, &mut dx2);
        drop(dxn2);
        // attention
        let mut dctx = vec![0f32; rows * pr[O].inp];
        pr[O].backward(
            w[O],
            p,
            so,
            &st.ctx,
            &dx2,
            rows,
            Some((&mut dctx, false)),
            &mut dp,
            self.mask(O),
        )?;
        let dctx = to_heads(&dctx, s, s.h, None);
        let scale = 1.0 / (s.d as f32).sqrt();
        let (dq, dk, dv) = attn_bwd(&st.q, &st.k, &st.v, &st.probs, &dctx, s, scale)?;
        drop(dctx);
        let rope = Some((&self.cos[..], &self.sin[..]));
        let dq = from_heads(&dq, s, s.h, rope);
        let dk = from_heads(&dk, s, s.kvh, rope);
        let dv = from_heads(&dv, s, s.kvh, None);
        let xn1 = &st.xn1;
        if !want_dx {
            pr[Q].backward(w[Q], p, sq, xn1, &dq, rows, None, &mut dp, self.mask(Q))?;
            pr[K].backward(w[K], p, sk, xn1, &dk, rows, None, &mut dp, self.mask(K))?;
            pr[V].backward(w[V], p, sv, xn1, &dv, rows, None, &mut dp, self.mask(V))?;
            return Ok((None, dp));
        }
        let mut dxn1 = vec![0f32; rows * hs];
        pr[Q].backward(
            w[Q],
            p,
            sq,
            xn1,
            &dq,
            rows,
            Some((&mut dxn1, false)),
            &mut dp,
            self.mask(Q),
        )?;
        pr[K].backward(
            w[K],
            p,
            sk,
            xn1,
            &dk,
            rows,
            Some((&mut dxn1, true)),
            &mut dp,
            self.mask(K),
        )?;
        pr[V].backward(
            w[V],
            p,
            sv,
            xn1,
            &dv,
            rows,
            Some((&mut dxn1, true)),
            &mut dp,
            self.mask(V),
        )?;
        rms_bwd(x, &st.inv1, w[7], &dxn1, &mut dx2);
        Ok((Some(dx2), dp))
    }
}

impl CustomOp2 for LayerOp {
    fn name(&self) -> &'static str {
        "fused-decoder-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data::<f32>("fused layer", s1, l1)?;
        let p = data::<f32>("fused layer", s2, l2)?;
        if x.len() != self.rows() * self.hidden {
            candle_core::bail!("fused layer: input {:?} does not fit", l1.dims());
        }
        let ws: Vec<&Tensor> = self.weights.iter().collect();
        let (y, saved) = with_data(&ws, |w| self.run_forward(x, p, w))?;
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        RUNS.fetch_add(1, Ordering::Relaxed);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(st) = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            candle_core::bail!("fused layer: backward without (or after a second) forward");
        };
        let g = g.contiguous()?;
        let want_dx = x.track_op();
        let mut ts: Vec<&Tensor> = self.weights.iter().collect();
        ts.extend([x, p, &g]);
        let n = self.weights.len();
        let (dx, dp) = with_data(&ts, |d| {
            self.run_backward(st, d[n], d[n + 1], &d[..n], d[n + 2], want_dx)
        })?;
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), &Device::Cpu))
            .transpose()?;
        Ok((dx, Some(Tensor::from_vec(dp, p.shape(), &Device::Cpu)?)))
    }
}

fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The layer as one fused op, or why it does not apply (see the module docs).
pub fn block_forward(
    block: &Block,
    x: &Tensor,
    pos: &Positions,
    eps: f64,
    path: LayerPath,
) -> std::result::Result<Result<Tensor>, Unfused> {
    if path == LayerPath::Composed || REFERENCE.with(|c| c.get()) {
        return Err(Unfused::Asked);
    }
    if !is_cpu_f32(x) {
        return Err(Unfused::NotCpuF32);
    }
    let (a, m) = (&block.self_attn, &block.mlp);
    let linears = [
        &a.q_proj,
        &a.k_proj,
        &a.v_proj,
        &a.o_proj,
        &m.gate_proj,
        &m.up_proj,
        &m.down_proj,
    ];
    let mut vars: Vec<Var> = Vec::new();
    let mut dropouts = Vec::with_capacity(7);
    let mut offset = 0usize;
    let mut projs = Vec::with_capacity(7);
    for l in linears {
        if l.bias().is_some() {
            return Err(Unfused::ProjectionBias);
        }
        if !is_cpu_f32(l.weight()) {
            return Err(Unfused::NotCpuF32);
        }
        let (out, inp) = l.shape();
        let ad = match l.adapter() {
            Some(ad) if !l.is_merged() => {
                let parts = ad.fused_parts().ok_or(Unfused::AdapterNotFusable)?;
                dropouts.push(parts.dropout.clone());
                let r = parts.a.dim(0).map_err(|_| Unfused::Shapes)?;
                let ok = [&parts.a, &parts.b]
                    .iter()
                    .chain(parts.magnitude.as_ref().as_slice())
                    .all(|v| is_cpu_f32(v.as_tensor()));
                if !ok {
                    return Err(Unfused::NotCpuF32);
                }
                if parts.a.dims() != [r, inp] || parts.b.dims() != [out, r] {
                    return Err(Unfused::Shapes);
                }
                let slot_a = offset;
                let slot_b = slot_a + r * inp;
                offset = slot_b + out * r;
                vars.push(parts.a);
                vars.push(parts.b);
                let slot_m = match parts.magnitude {
                    Some(mv) => {
                        if mv.dims() != [out] {
                            return Err(Unfused::Shapes);
                        }
                        vars.push(mv);
                        offset += out;
                        Some(offset - out)
                    }
                    None => None,
                };
                Some(AdapterSlot {
                    r,
                    scale: parts.scale as f32,
                    a: slot_a,
                    b: slot_b,
                    m: slot_m,
                })
            }
            _ => {
                dropouts.push(None);
                None
            }
        };
        projs.push(ProjShape { out, inp, ad });
    }
    if vars.is_empty() {
        return Err(Unfused::NoTrainingAdapter);
    }
    if !is_cpu_f32(&block.input_layernorm) || !is_cpu_f32(&block.post_attention_layernorm) {
        return Err(Unfused::NotCpuF32);
    }
    let projs: [ProjShape; 7] = projs.try_into().map_err(|_| Unfused::Shapes)?;
    let (h, kvh, d) = (a.n_heads, a.n_kv_heads, a.head_dim);
    let (b, t, hidden) = x.dims3().map_err(|_| Unfused::Shapes)?;
    let shapes_fit = kvh > 0
        && h % kvh == 0
        && d % 2 == 0
        && projs[Q].out == h * d
        && projs[K].out == kvh * d
        && projs[V].out == kvh * d
        && projs[O].inp == h * d
        && projs[GATE].out == projs[DOWN].inp
        && projs[UP].out == projs[DOWN].inp
        && [Q, K, V, GATE, UP].iter().all(|&i| projs[i].inp == hidden)
        && [O, DOWN].iter().all(|&i| projs[i].out == hidden)
        && pos.cos.dims() == [b, 1, t, d]
        && pos.sin_signed.dims() == [b, 1, t, d]
        && pos.bias.dims() == [b, 1, t, t]
        && is_cpu_f32(&pos.cos)
        && is_cpu_f32(&pos.bias);
    if !shapes_fit {
        return Err(Unfused::Shapes);
    }
    let run = || -> Result<Tensor> {
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        // one mask per adapter and forward, as the composed path draws them
        let masks = dropouts
            .iter()
            .zip(&projs)
            .map(|(d, pr)| match d {
                Some(d) => d.draw(&[b, t, pr.inp]),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let op = LayerOp {
            weights: linears
                .iter()
                .map(|l| l.weight().clone())
                .chain([
                    block.input_layernorm.clone(),
                    block.post_attention_layernorm.clone(),
                ])
                .collect(),
            projs,
            heads: Heads { b, t, h, kvh, d },
            hidden,
            eps: eps as f32,
            cos: flat(&pos.cos)?,
            sin: flat(&pos.sin_signed)?,
            bias: flat(&pos.bias)?,
            masks,
            saved: Mutex::new(None),
        };
        let flats = vars
            .iter()
            .map(|v| v.as_tensor().flatten_all())
            .collect::<Result<Vec<_>>>()?;
        let packed = Tensor::cat(&flats, 0)?;
        let x2 = x.reshape((b * t, hidden))?.contiguous()?;
        x2.apply_op2(&packed, op)?.reshape((b, t, hidden))
    };
    Ok(run())
}
