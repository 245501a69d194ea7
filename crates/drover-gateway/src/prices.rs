//! Prices (USD per million tokens) and the cost of a response.
//!
//! Built-in list prices for current Claude and OpenAI models (from the provider price pages as
//! of 2026-08; the OpenAI rows are provisional). Lookup is by exact model id, then by the id
//! without a date suffix (`claude-haiku-4-5-20251001` → `claude-haiku-4-5`,
//! `gpt-5.4-2026-03-05` → `gpt-5.4`). Nothing else is guessed: an unknown model has no price.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Token counts of one response, as the provider reported them on the wire.
///
/// `input` excludes cached tokens (Anthropic's `input_tokens`; OpenAI's prompt tokens minus
/// `cached_tokens`). `cache_write` is Anthropic's `cache_creation_input_tokens` (OpenAI reports
/// none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Tokens {
    /// All four counts added up (what `--max-tokens` limits).
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    /// 5-minute cache write (1.25 × input for Claude); 0 for OpenAI models.
    pub cache_write: f64,
    /// Other rates for a prompt above a size (Claude Haiku 5.5 above 100k prompt tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_prompt: Option<LongPrompt>,
}

/// Rates that apply to a whole response when its prompt (input + cache read + cache write) is
/// above `above_prompt_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPrompt {
    pub above_prompt_tokens: u64,
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// A price that cannot be used: negative, NaN or infinite.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("gateway.prices.\"{model}\".{field} = {value}: a price must be a finite number >= 0 (USD per million tokens)")]
pub struct BadPrice {
    pub model: String,
    pub field: &'static str,
    pub value: f64,
}

impl Price {
    /// All four rates (USD per million tokens).
    pub fn new(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Self {
        Price {
            input,
            output,
            cache_read,
            cache_write,
            long_prompt: None,
        }
    }

    /// A price with the given input/output rates and Anthropic's cache ratios (read 0.1×,
    /// 5-minute write 1.25× input).
    pub fn claude(input: f64, output: f64) -> Self {
        Price::new(input, output, input / 10.0, input * 1.25)
    }

    /// An OpenAI price: input, cached input, output; no cache write.
    pub fn openai(input: f64, cached: f64, output: f64) -> Self {
        Price::new(input, output, cached, 0.0)
    }

    /// Checks that every rate is a finite number >= 0.
    pub fn validate(&self, model: &str) -> Result<(), BadPrice> {
        let mut fields = vec![
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ];
        if let Some(l) = &self.long_prompt {
            fields.extend([
                ("long_prompt.input", l.input),
                ("long_prompt.output", l.output),
                ("long_prompt.cache_read", l.cache_read),
                ("long_prompt.cache_write", l.cache_write),
            ]);
        }
        match fields.into_iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            Some((field, value)) => Err(BadPrice {
                model: model.to_string(),
                field,
                value,
            }),
            None => Ok(()),
        }
    }

    /// The rates that apply to a response with `prompt_tokens` of prompt.
    fn rates(&self, prompt_tokens: u64) -> (f64, f64, f64, f64) {
        match &self.long_prompt {
            Some(l) if prompt_tokens > l.above_prompt_tokens => {
                (l.input, l.output, l.cache_read, l.cache_write)
            }
            _ => (self.input, self.output, self.cache_read, self.cache_write),
        }
    }

    /// The cost in USD of `t` tokens.
    pub fn cost(&self, t: &Tokens) -> f64 {
        let (input, output, cache_read, cache_write) =
            self.rates(t.input + t.cache_read + t.cache_write);
        (t.input as f64 * input
            + t.output as f64 * output
            + t.cache_read as f64 * cache_read
            + t.cache_write as f64 * cache_write)
            / 1_000_000.0
    }

    /// The most a response can cost with `prompt_tokens` of prompt (all of it billed at the
    /// dearest input rate) and `output_tokens` of output.
    pub fn worst_case(&self, prompt_tokens: u64, output_tokens: u64) -> f64 {
        let (input, output, cache_read, cache_write) = self.rates(prompt_tokens);
        let dearest_in = input.max(cache_read).max(cache_write);
        (prompt_tokens as f64 * dearest_in + output_tokens as f64 * output) / 1_000_000.0
    }

    /// The most output tokens whose [`Price::worst_case`] with this prompt stays within `usd`.
    pub fn affordable_output(&self, prompt_tokens: u64, usd: f64) -> u64 {
        let (_, output, _, _) = self.rates(prompt_tokens);
        let left = usd - self.worst_case(prompt_tokens, 0);
        if !(left > 0.0 && output > 0.0) {
            return 0;
        }
        let mut n = (left * 1_000_000.0 / output).floor().min(u32::MAX as f64) as u64;
        // Rounding: step down until the worst case fits (one step at most in practice).
        for _ in 0..4 {
            if n == 0 || self.worst_case(prompt_tokens, n) <= usd {
                return n;
            }
            n -= 1;
        }
        0
    }
}

/// Prices by model id. Serializes as a plain map, so a config file can hold overrides as
/// `{"claude-sonnet-5": {"input": 2, "output": 10, "cache_read": 0.2, "cache_write": 2.5}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable {
    models: HashMap<String, Price>,
}

impl PriceTable {
    /// No prices at all (every model is unknown).
    pub fn empty() -> Self {
        PriceTable::default()
    }

    /// The built-in list prices.
    ///
    /// Claude rows: the pricing tiers baked into Claude Code 2.1.328's model catalog (input,
    /// output, cache read, 5-minute cache write), which match Anthropic's price page. OpenAI
    /// rows are PROVISIONAL: plausible list prices chosen without a price page to check them
    /// against (override them with `gateway.prices."MODEL"` in config.toml).
    pub fn builtin() -> Self {
        let mut t = PriceTable::empty();
        // (ids, input, output, cache read, cache write)
        let claude: &[(&[&str], f64, f64, f64, f64)] = &[
            (
                &["claude-fable-5", "claude-mythos-5"],
                10.0,
                50.0,
                1.0,
                12.5,
            ),
            (
                &["claude-fable-5-1", "claude-mythos-5-1"],
                10.0,
                50.0,
                0.25,
                12.5,
            ),
            (
                &["claude-fable-5-2", "claude-mythos-5-2"],
                8.0,
                40.0,
                0.2,
                10.0,
            ),
            // Claude Code 2.1.328's default model.
            (&["claude-opus-5-5"], 4.0, 20.0, 0.2, 5.0),
            (
                &[
                    "claude-opus-5",
                    "claude-opus-4-8",
                    "claude-opus-4-7",
                    "claude-opus-4-6",
                    "claude-opus-4-5",
                ],
                5.0,
                25.0,
                0.5,
                6.25,
            ),
            (
                &["claude-opus-4-1", "claude-opus-4-0", "claude-opus-4"],
                15.0,
                75.0,
                1.5,
                18.75,
            ),
            (&["claude-sonnet-5-5"], 2.0, 10.0, 0.1, 2.5),
            (&["claude-sonnet-5"], 2.0, 10.0, 0.2, 2.5),
            (
                &[
                    "claude-sonnet-4-6",
                    "claude-sonnet-4-5",
                    "claude-sonnet-4-0",
                    "claude-sonnet-4",
                    "claude-3-7-sonnet",
                    "claude-3-5-sonnet",
                ],
                3.0,
                15.0,
                0.3,
                3.75,
            ),
            // Claude Code's small/fast model (titles, summaries, checks).
            (&["claude-haiku-4-5"], 1.0, 5.0, 0.1, 1.25),
            (&["claude-3-5-haiku"], 0.8, 4.0, 0.08, 1.0),
        ];
        for (ids, input, output, read, write) in claude {
            for id in *ids {
                t.set(id, Price::new(*input, *output, *read, *write));
            }
        }
        t.set(
            "claude-haiku-5-5",
            Price {
                long_prompt: Some(LongPrompt {
                    above_prompt_tokens: 100_000,
                    input: 0.5,
                    output: 2.5,
                    cache_read: 0.05,
                    cache_write: 0.625,
                }),
                ..Price::new(0.1, 0.5, 0.01, 0.125)
            },
        );
        // PROVISIONAL (see above). gpt-6.1-sol is Codex 0.169.0's default model.
        let openai: &[(&str, f64, f64, f64)] = &[
            ("gpt-6.1-sol", 5.0, 0.5, 30.0),
            ("gpt-6.1-terra", 2.5, 0.25, 15.0),
            ("gpt-6-sol", 5.0, 0.5, 30.0),
            ("gpt-6-luna", 0.75, 0.075, 4.5),
            ("gpt-6-astra", 10.0, 1.0, 60.0),
            ("gpt-5.5", 5.0, 0.5, 30.0),
            ("gpt-5.4", 2.5, 0.25, 15.0),
            ("gpt-5.4-mini", 0.75, 0.075, 4.5),
            ("gpt-5.4-nano", 0.2, 0.02, 1.25),
            ("gpt-5.3-codex", 1.75, 0.175, 14.0),
            ("gpt-5-mini", 0.25, 0.025, 2.0),
        ];
        for (id, input, cached, output) in openai {
            t.set(id, Price::openai(*input, *cached, *output));
        }
        t
    }

    /// Checks every price (finite, >= 0).
    pub fn validate(&self) -> Result<(), BadPrice> {
        let mut models: Vec<_> = self.models.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        models.into_iter().try_for_each(|(m, p)| p.validate(m))
    }

    /// The model ids priced, sorted.
    pub fn models(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.models.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Sets (or overrides) the price of one model.
    pub fn set(&mut self, model: &str, price: Price) {
        self.models.insert(model.to_string(), price);
    }

    /// This table with `overrides` laid over it.
    pub fn with_overrides(mut self, overrides: &PriceTable) -> Self {
        for (m, p) in &overrides.models {
            self.models.insert(m.clone(), *p);
        }
        self
    }

    /// The price of `model`: exact id, else the id without a date suffix.
    pub fn get(&self, model: &str) -> Option<Price> {
        self.models
            .get(model)
            .or_else(|| strip_date(model).and_then(|m| self.models.get(m)))
            .copied()
    }

    /// The cost of `tokens` on `model`; `None` for an unknown model.
    pub fn cost(&self, model: &str, tokens: &Tokens) -> Option<f64> {
        self.get(model).map(|p| p.cost(tokens))
    }
}

/// `name-YYYYMMDD` or `name-YYYY-MM-DD` → `name`.
fn strip_date(model: &str) -> Option<&str> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((head, tail)) = model.rsplit_once('-') {
        if tail.len() == 8 && all_digits(tail) {
            return Some(head);
        }
    }
    if model.len() > 11 {
        let (head, tail) = model.split_at(model.len() - 11);
        let parts: Vec<&str> = tail.split('-').collect();
        if parts.len() == 4
            && parts[0].is_empty()
            && parts[1].len() == 4
            && parts[2].len() == 2
            && parts[3].len() == 2
            && parts[1..].iter().all(|p| all_digits(p))
        {
            return Some(head);
        }
    }
    None
}
