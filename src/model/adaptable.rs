//! `Llama` as an adapter host: `crate::adapter::AdaptableModel` (its projections by HF module
//! path) and `crate::lm::TrainableLm` (the adapter variables, PEFT-named, dropout mode and seed).

use candle_core::Var;

use super::llama::Llama;
use crate::adapter::AdapterError;
use crate::adapter::attach::{self, AdaptableModel};
use crate::adapter::linear::Linear;
use crate::adapter::prefix::{Prefix, PrefixShape};
use crate::lm::TrainableLm;

impl AdaptableModel for Llama {
    fn linears(&self) -> Vec<(String, &Linear)> {
        Llama::linears(self)
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        Llama::linears_mut(self)
    }

    fn prefix_shape(&self) -> Option<PrefixShape> {
        Llama::prefix_shape(self)
    }

    fn prefix(&self) -> Option<&Prefix> {
        Llama::prefix(self)
    }

    fn set_prefix(&mut self, prefix: Option<Prefix>) -> Result<Option<Prefix>, AdapterError> {
        if prefix.is_some() && self.prefix_shape().is_none() {
            return Err(AdapterError::NoPrefix);
        }
        Ok(Llama::set_prefix(self, prefix))
    }
}

impl TrainableLm for Llama {
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        attach::trainable_vars(self)
    }

    fn set_training(&self, training: bool) {
        attach::set_training(self, training);
    }

    fn set_dropout_seed(&self, seed: u64) {
        attach::set_dropout_stream(self, seed);
    }
}
