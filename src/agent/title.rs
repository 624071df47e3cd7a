//! Thread titles: when an agent's memory has `threads.generateTitle`, the first exchange of a
//! new thread gets a short title written by the agent's own model, in the background.

use std::sync::Arc;

use super::Agent;
use crate::inference::{ChatMessage, GenerateRequest, SamplingParams};
use crate::memory::engine::Memory;

/// Longest title kept, in characters.
const MAX_TITLE: usize = 60;

/// A title from the model's text: first line, no quotes or trailing punctuation, bounded.
pub fn clean(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line
        .trim_start_matches(|c: char| c == '#' || c == '*' || c.is_whitespace())
        .trim_start_matches("Title:")
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '*')
        .trim_end_matches(['.', '!', ':'])
        .trim();
    if line.is_empty() {
        return None;
    }
    Some(line.chars().take(MAX_TITLE).collect())
}

/// Writes a title for thread `thread_id` from its first user message; failures are logged.
pub async fn generate(agent: &Arc<Agent>, memory: &Memory, thread_id: &str, first_message: &str) {
    let mut req = GenerateRequest::new(vec![
        ChatMessage::new(
            "system",
            "Write a short title (at most six words) for a conversation that starts with the user's message. Answer with the title only.",
        ),
        ChatMessage::new("user", first_message.chars().take(1000).collect::<String>()),
    ]);
    req.max_tokens = 24;
    req.sampling = SamplingParams {
        temperature: 0.2,
        ..SamplingParams::default()
    };
    let outcome = match agent.model.generate(req, None).await {
        Ok(g) => match clean(&g.text) {
            Some(title) => memory
                .update_thread(thread_id, Some(title), None, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("the model wrote no title".into()),
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        tracing::warn!(agent = %agent.key, thread = thread_id, error = %e, "no thread title");
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn titles_are_cleaned() {
        assert_eq!(
            clean("\n\"Trip to Oslo.\"\nmore").as_deref(),
            Some("Trip to Oslo")
        );
        assert_eq!(
            clean("Title: Weather talk").as_deref(),
            Some("Weather talk")
        );
        assert_eq!(clean("## **Greetings**").as_deref(), Some("Greetings"));
        assert_eq!(clean("   \n  "), None);
        assert_eq!(clean(&"x".repeat(200)).unwrap().len(), 60);
    }
}
