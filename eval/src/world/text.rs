//! Item text: title, keywords and attributes written from the taxonomy's vocabulary so that a
//! language model can recover the latent attributes (subcategory from the nouns and the
//! category field, style from the adjectives, price tier from the price within its
//! subcategory, the brand and tier words).

use super::taxonomy::{self, ATTRIBUTES, CATEGORIES, STYLES, TIER_WORDS};
use rand::Rng;
use rand::seq::IndexedRandom;

/// The generated text fields of one item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemText {
    pub title: String,
    pub keywords: String,
    pub attributes: String,
}

/// Writes the text of an item of subcategory `sub` (global), `style`, `tier`, local `brand`.
pub(crate) fn item_text<R: Rng>(rng: &mut R, sub: usize, style: usize, tier: usize, brand: usize) -> ItemText {
    let cat = sub / taxonomy::SUBS_PER_CATEGORY;
    let c = &CATEGORIES[cat];
    let s = taxonomy::subcategory(sub);
    let style_word = *STYLES[style].words.choose(rng).unwrap_or(&STYLES[style].name);
    let noun = *s.nouns.choose(rng).unwrap_or(&s.name);
    let material = *c.materials.choose(rng).unwrap_or(&"");
    let modifier = *c.modifiers.choose(rng).unwrap_or(&"");

    // Title: [Brand] Style [Tier word] [Modifier] [Material] Noun [(Modifier)] [model number].
    let mut parts: Vec<String> = Vec::with_capacity(8);
    let brand_name = taxonomy::brand_name(cat, brand);
    if brand_name != "-" {
        parts.push(brand_name.to_owned());
    }
    parts.push(style_word.to_owned());
    if rng.random_bool(0.6) {
        parts.push((*TIER_WORDS[tier].choose(rng).unwrap_or(&"")).to_owned());
    }
    let paren_modifier = rng.random_bool(0.25);
    if !paren_modifier && rng.random_bool(0.7) {
        parts.push(modifier.to_owned());
    }
    if rng.random_bool(0.5) {
        parts.push(material.to_owned());
    }
    parts.push(noun.to_owned());
    if paren_modifier {
        parts.push(format!("({modifier})"));
    }
    if rng.random_bool(0.6) {
        parts.push(format!("{}", rng.random_range(100..1000)));
    }
    let title = parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");

    // Keywords: the plain noun, the styled noun, then some of noun / material / modifier.
    let plain = s.nouns[0];
    let mut kw = vec![plain.to_owned(), format!("{style_word} {plain}")];
    if noun != plain {
        kw.push(noun.to_owned());
    }
    if rng.random_bool(0.5) {
        kw.push(material.to_owned());
    }
    if rng.random_bool(0.5) {
        kw.push(modifier.to_owned());
    }
    let keywords = kw.join(", ");

    // Attributes: service tags; flash sales lean budget, guarantees and instalments lean premium.
    let p: [f64; 9] = match tier {
        0 => [0.8, 0.55, 0.15, 0.1, 0.5, 0.6, 0.05, 0.1, 0.3],
        1 => [0.8, 0.2, 0.2, 0.3, 0.6, 0.5, 0.2, 0.3, 0.4],
        _ => [0.7, 0.05, 0.25, 0.6, 0.7, 0.5, 0.65, 0.4, 0.5],
    };
    let mut attrs: Vec<&str> = ATTRIBUTES.iter().zip(p).filter_map(|(a, p)| rng.random_bool(p).then_some(*a)).collect();
    if attrs.is_empty() {
        attrs.push(ATTRIBUTES[0]);
    }
    ItemText { title, keywords, attributes: attrs.join(", ") }
}

/// A price in yuan for tier `tier` of subcategory `sub`, on the grid shops use (x.9, whole yuan,
/// …9 above 100). Returned as tenths of a yuan so it prints and parses exactly.
pub(crate) fn price_tenths<R: Rng>(rng: &mut R, sub: usize, tier: usize) -> u32 {
    let (lo, hi) = taxonomy::tier_band(sub, tier);
    let p = (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp();
    let tenths = if p < 10.0 {
        p.floor() * 10.0 + 9.0
    } else if p < 100.0 {
        if rng.random_bool(0.5) { p.floor() * 10.0 + 9.0 } else { p.round() * 10.0 }
    } else if rng.random_bool(0.6) {
        ((p / 10.0).round() * 10.0 - 1.0) * 10.0
    } else {
        p.round() * 10.0
    };
    tenths.max(9.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn text_reveals_subcategory_and_style() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for sub in 0..taxonomy::N_SUBCATEGORIES {
            for (style, st) in STYLES.iter().enumerate() {
                let t = item_text(&mut rng, sub, style, style % 3, 0);
                let s = taxonomy::subcategory(sub);
                assert!(s.nouns.iter().any(|n| t.title.contains(n)), "{}", t.title);
                assert!(st.words.iter().any(|w| t.title.contains(w)), "{}", t.title);
                assert!(t.keywords.starts_with(s.nouns[0]));
                assert!(!t.attributes.is_empty());
            }
        }
    }

    #[test]
    fn prices_stay_near_their_band() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for sub in 0..taxonomy::N_SUBCATEGORIES {
            for tier in 0..3 {
                let (lo, hi) = taxonomy::tier_band(sub, tier);
                for _ in 0..20 {
                    let p = price_tenths(&mut rng, sub, tier) as f64 / 10.0;
                    assert!(
                        p >= lo * 0.85 - 1.0 && p <= hi * 1.1 + 1.0,
                        "sub {sub} tier {tier}: {p} not in {lo}..{hi}"
                    );
                }
            }
        }
    }
}
