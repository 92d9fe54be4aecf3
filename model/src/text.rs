//! Item text templates: how an [`Item`] becomes the text the frozen LLM reads (CEG input).
//!
//! The default is the paper's six fields in order,
//! `Title: …; Category: …; Brand: …; Price: … yuan; Keywords: …; Attribute: …`, skipping
//! fields that are empty (or a missing price). This is exactly the format of the texts in
//! `golden/texts.json`. The price unit is configurable: the default is `yuan` (the paper's
//! catalogs and the synthetic world are priced in yuan); `TextTemplate::paper(None)` prints the
//! bare number. Catalogs without prices (MovieLens) simply have no `Price:` part.
//!
//! A custom template uses `{field}` placeholders: `title`, `category`, `brand`, `price`,
//! `keywords`, `attributes`, `id`, or any extra catalog column; `{{` / `}}` are literal braces.
//! An unknown placeholder is an error when the template is parsed.

use crate::{Error, Result};
use learnrec_eval::data::{Field, Item};
use sha2::{Digest, Sha256};

/// How items are rendered to text.
#[derive(Debug, Clone, PartialEq)]
pub enum TextTemplate {
    /// The paper's six labelled fields, `; `-separated, empty ones skipped; `price_unit` is
    /// appended to the price after a space (`Some("yuan")` by default).
    Paper { price_unit: Option<String> },
    /// A user template (see the module docs).
    Custom { source: String, parts: Vec<Part> },
}

/// A piece of a custom template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Literal(String),
    Field(String),
}

impl Default for TextTemplate {
    fn default() -> Self {
        TextTemplate::paper(Some("yuan"))
    }
}

/// Placeholders every item has.
const BUILTIN: [&str; 7] = [
    "id",
    "title",
    "category",
    "brand",
    "price",
    "keywords",
    "attributes",
];

impl TextTemplate {
    /// The paper's default template with the given price unit.
    pub fn paper(price_unit: Option<&str>) -> Self {
        TextTemplate::Paper {
            price_unit: price_unit.filter(|u| !u.is_empty()).map(str::to_owned),
        }
    }

    /// Parses a `{field}` template. `extra_columns` are the catalog's extra column names, which
    /// are valid placeholders too. Errors name the template and the bad placeholder.
    pub fn parse(template: &str, extra_columns: &[String]) -> Result<Self> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|x| x.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|x| x.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(Error::Invalid(format!(
                            "template `{template}`: `{{` at byte {pos} is never closed (write `{{{{` for a literal brace)"
                        )));
                    }
                    let name = name.trim().to_owned();
                    if !BUILTIN.contains(&name.as_str()) && !extra_columns.contains(&name) {
                        let mut known: Vec<&str> = BUILTIN.to_vec();
                        known.extend(extra_columns.iter().map(String::as_str));
                        return Err(Error::Invalid(format!(
                            "template `{template}`: unknown placeholder `{{{name}}}` (known: {})",
                            known.join(", ")
                        )));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Field(name));
                }
                '}' => {
                    return Err(Error::Invalid(format!(
                        "template `{template}`: unmatched `}}` at byte {pos} (write `}}}}` for a literal brace)"
                    )));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(TextTemplate::Custom {
            source: template.to_owned(),
            parts,
        })
    }

    /// A short description for store metadata (`paper(yuan)` or the template source).
    pub fn describe(&self) -> String {
        match self {
            TextTemplate::Paper { price_unit } => {
                format!("paper({})", price_unit.as_deref().unwrap_or(""))
            }
            TextTemplate::Custom { source, .. } => source.clone(),
        }
    }

    /// Renders `item`.
    pub fn render(&self, item: &Item) -> String {
        match self {
            TextTemplate::Paper { price_unit } => {
                let mut out = String::new();
                for f in Field::ALL {
                    let value = match f {
                        Field::Price => match item.price {
                            Some(p) => {
                                let p = learnrec_eval::data::format_price(p);
                                match price_unit {
                                    Some(u) => format!("{p} {u}"),
                                    None => p,
                                }
                            }
                            None => continue,
                        },
                        _ => item.field(f.name()).unwrap_or_default(),
                    };
                    let value = value.trim();
                    if value.is_empty() {
                        continue;
                    }
                    if !out.is_empty() {
                        out.push_str("; ");
                    }
                    out.push_str(f.label());
                    out.push_str(": ");
                    out.push_str(value);
                }
                out
            }
            TextTemplate::Custom { parts, .. } => parts
                .iter()
                .map(|p| match p {
                    Part::Literal(s) => s.clone(),
                    Part::Field(name) => item.field(name).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// The content hash of one embedding input: sha256 over the model identity (model path/name
/// plus everything that changes the output, e.g. pooling) and the rendered text, hex-encoded.
/// The embed pipeline stores it per row and skips rows whose hash is unchanged on resume.
pub fn content_hash(model_id: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update((model_id.len() as u64).to_le_bytes());
    h.update(model_id.as_bytes());
    h.update(text.as_bytes());
    learnrec_eval::store::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earrings() -> Item {
        Item {
            id: "i1".into(),
            title: "Envy Versatile Five-Petal Flower Earrings 357".into(),
            category: "Earrings".into(),
            brand: "Envy".into(),
            price: Some(9.9),
            keywords: "Earrings, Five-Petal Flower Earrings".into(),
            attributes: "Returns for Damaged Packages".into(),
            ..Default::default()
        }
    }

    #[test]
    fn paper_template_matches_golden_text() {
        let golden = "Title: Envy Versatile Five-Petal Flower Earrings 357; Category: Earrings; Brand: Envy; \
                      Price: 9.9 yuan; Keywords: Earrings, Five-Petal Flower Earrings; Attribute: Returns for Damaged Packages";
        assert_eq!(TextTemplate::default().render(&earrings()), golden);
        let mut it = earrings();
        it.price = Some(39.0);
        it.brand = "-".into();
        assert!(
            TextTemplate::default()
                .render(&it)
                .contains("Brand: -; Price: 39.0 yuan;")
        );
    }

    #[test]
    fn paper_template_skips_empty_fields_and_unit() {
        let it = Item {
            id: "m".into(),
            title: "Toy Story (1995)".into(),
            category: "Animation".into(),
            ..Default::default()
        };
        assert_eq!(
            TextTemplate::default().render(&it),
            "Title: Toy Story (1995); Category: Animation"
        );
        let mut it = earrings();
        it.keywords = "  ".into();
        let t = TextTemplate::paper(None).render(&it);
        assert!(t.contains("Price: 9.9; Attribute:"), "{t}");
    }

    #[test]
    fn custom_template_renders_and_escapes() {
        let mut it = earrings();
        it.extra.insert("genres".into(), "Comedy".into());
        let t =
            TextTemplate::parse("{title} | {genres} {{x}} {price}", &["genres".into()]).unwrap();
        assert_eq!(
            t.render(&it),
            "Envy Versatile Five-Petal Flower Earrings 357 | Comedy {x} 9.9"
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        let e = TextTemplate::parse("{title} {colour}", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown placeholder `{colour}`") && e.contains("known: id, title"),
            "{e}"
        );
        let e = TextTemplate::parse("{title", &[]).unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");
        let e = TextTemplate::parse("title}", &[]).unwrap_err().to_string();
        assert!(e.contains("unmatched `}`"), "{e}");
    }

    #[test]
    fn content_hash_depends_on_model_and_text() {
        let a = content_hash("m1", "text");
        assert_eq!(a.len(), 64);
        assert_eq!(a, content_hash("m1", "text"));
        assert_ne!(a, content_hash("m2", "text"));
        assert_ne!(a, content_hash("m1", "text2"));
        // The length prefix keeps (model, text) boundaries unambiguous.
        assert_ne!(content_hash("ab", "c"), content_hash("a", "bc"));
    }
}
