//! Seeded, reproducible dropout on the adapter input.
//!
//! Dropout is active only in training mode (off after construction; the trainer switches it on)
//! and when `p > 0`. Kept elements are scaled by `1/(1-p)` (inverted dropout, as `nn.Dropout`).
//!
//! Reproducibility and resume: the mask of a forward call is a pure function of
//! `(module seed, stream, call index)`, where `stream` is set by the trainer
//! ([`Dropout::set_stream`], e.g. to the global micro-step) and the call index counts forward calls
//! since the stream was last set. A trainer that sets the stream before every micro-batch gets the
//! same masks after a restart without saving any RNG state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use candle_core::{Result, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug)]
pub struct Dropout {
    p: f64,
    seed: u64,
    training: AtomicBool,
    stream: AtomicU64,
    calls: AtomicU64,
}

impl Dropout {
    /// `p` must lie in `[0, 1)`; the caller (config validation) checks it.
    pub fn new(p: f64, seed: u64) -> Self {
        Self {
            p,
            seed,
            training: AtomicBool::new(false),
            stream: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Select the random stream of the following forward calls and restart their call count.
    pub fn set_stream(&self, stream: u64) {
        self.stream.store(stream, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
    }

    /// True when [`Dropout::apply`] changes its input.
    pub fn is_active(&self) -> bool {
        self.p > 0.0 && self.is_training()
    }

    /// `x` with dropout applied (or `x` itself when inactive).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if !self.is_active() {
            return Ok(x.clone());
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let stream = self.stream.load(Ordering::Relaxed);
        let mask = self.mask(x.dims(), stream, call)?;
        x.mul(&mask.to_device(x.device())?.to_dtype(x.dtype())?)
    }

    /// The mask [`Dropout::apply`] would multiply an input of `shape` by on this call (the same
    /// call count and stream), as a flat row-major vector; `None` when inactive. For fused
    /// kernels that apply the mask themselves.
    pub fn draw(&self, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        if !self.is_active() {
            return Ok(None);
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let stream = self.stream.load(Ordering::Relaxed);
        let mask = self.mask(shape, stream, call)?;
        Ok(Some(mask.flatten_all()?.to_vec1::<f32>()?))
    }

    fn mask(&self, shape: &[usize], stream: u64, call: u64) -> Result<Tensor> {
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&stream.to_le_bytes());
        key[16..].copy_from_slice(&call.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(*blake3::hash(&key).as_bytes());
        let keep = (1.0 / (1.0 - self.p)) as f32;
        // Drop when a uniform u32 falls below p * 2^32 (one draw per element, no float maths).
        let threshold = (self.p * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                if rng.next_u32() < threshold {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn ones() -> Tensor {
        Tensor::ones((64, 100), DType::F32, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn identity_outside_training() {
        let d = Dropout::new(0.5, 1);
        assert_eq!(values(&d.apply(&ones()).unwrap()), values(&ones()));
    }

    // Reference: inverted dropout keeps each element with probability 1-p and scales it by 1/(1-p).
    #[test]
    fn drops_about_p_and_rescales() {
        let d = Dropout::new(0.25, 1);
        d.set_training(true);
        let v = values(&d.apply(&ones()).unwrap());
        let zeros = v.iter().filter(|x| **x == 0.0).count() as f64 / v.len() as f64;
        assert!((zeros - 0.25).abs() < 0.03, "dropped {zeros}");
        assert!(v.iter().all(|x| *x == 0.0 || (*x - 4.0 / 3.0).abs() < 1e-6));
    }

    #[test]
    fn masks_replay_after_setting_the_stream_again() {
        let d = Dropout::new(0.5, 9);
        d.set_training(true);
        d.set_stream(3);
        let first = values(&d.apply(&ones()).unwrap());
        let second = values(&d.apply(&ones()).unwrap());
        assert_ne!(first, second, "consecutive calls must use different masks");
        let other = Dropout::new(0.5, 9);
        other.set_training(true);
        other.set_stream(3);
        assert_eq!(values(&other.apply(&ones()).unwrap()), first);
        assert_eq!(values(&other.apply(&ones()).unwrap()), second);
        other.set_stream(4);
        assert_ne!(values(&other.apply(&ones()).unwrap()), first);
    }
}
