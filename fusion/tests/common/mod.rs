//! The toy world every fusion integration test starts from: generated data, ID vocabularies
//! fitted on the training split, the LEARN lookup, and a ranker config sized to them.

use learnrec_fusion::data::IdVocab;
use learnrec_fusion::toy::{Toy, ToyConfig};
use learnrec_fusion::{LearnLookup, RankerConfig};

pub struct Setup {
    pub toy: Toy,
    pub users: IdVocab,
    pub items: IdVocab,
    pub lookup: LearnLookup,
}

/// A toy world from `cfg`, its 70/10/20 temporal split's vocabularies and the LEARN lookup.
pub fn setup(cfg: &ToyConfig) -> Setup {
    let toy = Toy::generate(cfg);
    let split = toy.data.temporal_split(0.7, 0.1);
    let users = IdVocab::fit(&toy.data.users, split.train.iter().map(|e| e.user));
    let items = IdVocab::fit(&toy.data.items, split.train.iter().map(|e| e.item));
    let lookup = toy.learn_lookup().unwrap();
    Setup { toy, users, items, lookup }
}

/// The reference ranker's config for the world's ID tables and feature fields.
pub fn ranker_config(s: &Setup) -> RankerConfig {
    RankerConfig::new(
        s.users.n_rows(),
        s.items.n_rows(),
        s.toy.data.features.n_rows(),
        s.toy.data.features.n_fields(),
    )
}
