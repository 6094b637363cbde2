//! Names made from free text: a project's name from its prompt, an
//! export's folder and image name from a project's, the scaffolder's Python
//! identifiers from words of a prompt. One way to cut text into words, one
//! way to join them.

/// The words of `text`: runs of lower-case ASCII letters and digits, with
/// the accents of Latin letters folded away ("Café" → "cafe", "Straße" →
/// "strasse"). Everything else, other scripts included, separates words.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else if let Some(ascii) = fold_latin(c) {
            word.push_str(ascii);
        } else if ('\u{300}'..='\u{36f}').contains(&c) {
            // A combining accent left over from lower-casing (İ → i̇): drop it.
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `words` joined by `separator`, as many whole words as fit in `max_bytes`;
/// a first word longer than that is cut.
pub fn join<S: AsRef<str>>(words: &[S], separator: char, max_bytes: usize) -> String {
    let mut out = String::new();
    for word in words {
        let word = word.as_ref();
        if out.is_empty() {
            // Words are ASCII, so any cut falls between characters.
            out.push_str(&word[..word.len().min(max_bytes)]);
            continue;
        }
        if out.len() + 1 + word.len() > max_bytes {
            break;
        }
        out.push(separator);
        out.push_str(word);
    }
    out
}

/// ASCII for common lower-case Latin letters with accents, so "Café" stays readable.
fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_ascii_with_latin_accents_folded() {
        assert_eq!(words("Café Crème"), ["cafe", "creme"]);
        assert_eq!(words("Straße, İstanbul!"), ["strasse", "istanbul"]);
        assert_eq!(words("$(rm -rf /) ../x"), ["rm", "rf", "x"]);
        assert_eq!(words("日本語 app ☃"), ["app"]);
        assert!(words("").is_empty() && words("--..//").is_empty());
    }

    #[test]
    fn join_keeps_whole_words_within_the_limit() {
        assert_eq!(join(&["ab", "cd", "ef"], '-', 5), "ab-cd");
        assert_eq!(join(&["ab", "cd", "ef"], '_', 100), "ab_cd_ef");
        assert_eq!(join(&["abcdefgh"], '-', 4), "abcd");
        assert_eq!(join::<&str>(&[], '-', 4), "");
    }
}
