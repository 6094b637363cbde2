//! A decoder for server-sent events, fed with bytes as they arrive.

/// One event: its type (if named) and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines.
    pub data: String,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl Decoder {
    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        // Only the new bytes are searched, and the consumed lines are
        // removed once: linear in the bytes received, however they are cut.
        let searched = self.buffer.len();
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut at = searched;
        while let Some(offset) = self.buffer[at..].iter().position(|&b| b == b'\n') {
            let end = at + offset;
            let line = String::from_utf8_lossy(&self.buffer[start..end]).into_owned();
            let line = line.trim_end_matches('\r');
            if let Some(event) = self.line(line) {
                events.push(event);
            }
            start = end + 1;
            at = start;
        }
        self.buffer.drain(..start);
        events
    }

    /// Bytes held for an event not yet complete.
    pub fn pending(&self) -> usize {
        self.buffer.len() + self.data.iter().map(String::len).sum::<usize>()
    }

    /// Ends the stream; returns an event left without its blank line.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = String::from_utf8_lossy(&rest);
        let mut last = None;
        if !rest.trim().is_empty() {
            last = self.line(rest.trim_end_matches(['\n', '\r']));
        }
        last.or_else(|| self.line(""))
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_none() {
                return None;
            }
            return Some(Event {
                event: self.event.take(),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None; // a comment, used as keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn events_split_across_pushes_are_reassembled() {
        let mut d = Decoder::default();
        let mut all = d.push(b"data: {\"a\"");
        all.extend(d.push(b":1}\n\ndata: [DONE]\r\n\r\n"));
        assert_eq!(data(&all), ["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn comments_names_and_multiline_data() {
        let mut d = Decoder::default();
        let all = d.push(b": keep-alive\n\nevent: error\ndata: x\ndata: y\n\n");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].event.as_deref(), Some("error"));
        assert_eq!(all[0].data, "x\ny");
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        let mut d = Decoder::default();
        assert!(d.push(b"data: tail").is_empty());
        assert_eq!(d.finish().unwrap().data, "tail");
        assert!(d.finish().is_none());
    }

    #[test]
    fn events_are_the_same_however_the_bytes_are_cut() {
        let stream: String = (0..500)
            .map(|i| format!("event: e{i}\r\ndata: {{\"n\":{i}}}\ndata: more\n\n: keep-alive\n"))
            .collect();
        let whole = Decoder::default().push(stream.as_bytes());
        assert_eq!(whole.len(), 500);
        assert_eq!(whole[499].data, "{\"n\":499}\nmore");
        for cut in [1, 7, 64, 4096] {
            let mut decoder = Decoder::default();
            let events: Vec<Event> = stream
                .as_bytes()
                .chunks(cut)
                .flat_map(|chunk| decoder.push(chunk))
                .collect();
            assert_eq!(events, whole, "cut every {cut} bytes");
            assert_eq!(decoder.pending(), 0);
        }
    }
}
