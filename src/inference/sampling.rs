//! Choosing the next token from logits: repetition, presence and frequency penalties,
//! temperature, top-k, top-p, a seedable random source, and an optional allow-mask (constrained
//! decoding). Temperature 0 is greedy.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub seed: Option<u64>,
    /// Divides positive (multiplies negative) logits of tokens already produced; 1 is off.
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every token already produced.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was produced.
    pub frequency_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            seed: None,
            repetition_penalty: 1.1,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }
}

impl SamplingParams {
    /// Always the most likely token, nothing penalised.
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            ..SamplingParams::default()
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let rng = match params.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Sampler {
            params,
            rng,
            counts: HashMap::new(),
        }
    }

    /// Records a token as produced, for the penalties.
    pub fn observe(&mut self, token: u32) {
        *self.counts.entry(token).or_default() += 1;
    }

    /// Picks a token. `allowed`, when given, says which tokens may be chosen; if it allows none
    /// of the candidates, `None`.
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        allowed: Option<&dyn Fn(u32) -> bool>,
    ) -> Option<u32> {
        let p = &self.params;
        for (&tok, &n) in &self.counts {
            if let Some(l) = logits.get_mut(tok as usize) {
                if p.repetition_penalty != 1.0 {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
                *l -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
        if let Some(allowed) = allowed {
            for (i, l) in logits.iter_mut().enumerate() {
                if !allowed(i as u32) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let best = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)?;
        if p.temperature <= 0.0 {
            return Some(best);
        }
        // Candidates: the top-k logits, softmaxed at the temperature, cut at top-p mass.
        let mut cands: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        cands.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if p.top_k > 0 && cands.len() > p.top_k {
            cands.truncate(p.top_k);
        }
        let max = cands[0].1;
        let mut total = 0.0f32;
        for c in &mut cands {
            c.1 = ((c.1 - max) / p.temperature).exp();
            total += c.1;
        }
        let mut kept = 0;
        let mut mass = 0.0;
        for c in &cands {
            mass += c.1 / total;
            kept += 1;
            if p.top_p < 1.0 && mass >= p.top_p {
                break;
            }
        }
        cands.truncate(kept.max(1));
        let sum: f32 = cands.iter().map(|c| c.1).sum();
        let mut r = self.rng.random::<f32>() * sum;
        for c in &cands {
            r -= c.1;
            if r <= 0.0 {
                return Some(c.0);
            }
        }
        Some(cands.last().map(|c| c.0).unwrap_or(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            repetition_penalty: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn greedy_takes_the_best_allowed_token() {
        let mut s = Sampler::new(greedy());
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], None), Some(1));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], Some(&|t| t != 1)), Some(2));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], Some(&|_| false)), None);
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: 1.0,
            ..greedy()
        });
        s.observe(1);
        s.observe(1);
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.0], None), Some(2));
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            ..greedy()
        });
        s.observe(1);
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.0], None), Some(2));
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 0.5,
            ..greedy()
        });
        s.observe(1);
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.6], None), Some(2));
    }

    #[test]
    fn a_seed_makes_sampling_repeatable() {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: Some(7),
            ..Default::default()
        };
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = || {
            let mut s = Sampler::new(params.clone());
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), None).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert!(
            run().iter().collect::<std::collections::HashSet<_>>().len() > 1,
            "it samples, not argmaxes"
        );
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplingParams {
            temperature: 2.0,
            top_k: 1,
            ..greedy()
        });
        for _ in 0..10 {
            assert_eq!(s.sample(&mut [1.0, 1.5, 0.2], None), Some(1));
        }
    }

    #[test]
    fn top_p_cuts_the_tail() {
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            top_k: 0,
            seed: Some(1),
            ..greedy()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [10.0, 0.0, 0.0, 0.0], None), Some(0));
        }
    }
}
