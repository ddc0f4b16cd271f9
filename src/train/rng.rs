//! The trainer's random stream for adapter dropout: a ChaCha8 stream seeded from the run's seed,
//! from which one `u64` is drawn per micro-batch and handed to the model
//! (`TrainableLm::set_dropout_seed`). Its whole state is `(seed, word position)`, saved in each
//! checkpoint, so a resumed run draws the same dropout masks as an uninterrupted one.
//! (The data order needs no stream state: see `source`.)

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Offsets the dropout stream from other uses of the run seed.
const DROPOUT_STREAM: u64 = 0x6472_6f70_6f75_7431; // "dropout1"

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: u64,
    /// ChaCha word position, as a decimal string (u128 does not fit JSON numbers).
    pub word_pos: String,
}

pub struct DropoutRng {
    seed: u64,
    rng: ChaCha8Rng,
}

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: Self::stream(seed),
        }
    }

    fn stream(seed: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(DROPOUT_STREAM);
        rng
    }

    /// The seed for the next micro-batch's dropout masks.
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub fn state(&self) -> RngState {
        RngState {
            seed: self.seed,
            word_pos: self.rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(state: &RngState) -> Option<Self> {
        let pos: u128 = state.word_pos.parse().ok()?;
        let mut rng = Self::stream(state.seed);
        rng.set_word_pos(pos);
        Some(Self {
            seed: state.seed,
            rng,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_stream_continues_where_the_saved_one_was() {
        let mut a = DropoutRng::new(7);
        let _ = (a.next_seed(), a.next_seed());
        let mut b = DropoutRng::restore(&a.state()).unwrap();
        assert_eq!(
            (a.next_seed(), a.next_seed()),
            (b.next_seed(), b.next_seed())
        );
        assert_ne!(
            DropoutRng::new(7).next_seed(),
            DropoutRng::new(8).next_seed()
        );
    }
}
