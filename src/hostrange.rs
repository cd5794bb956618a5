//! Hostranges, as ipmipower and pdsh write them: `node[001-100]`, `rack[1-2]-n[7,9-10]`.

/// The most hosts one pattern may expand to (a typo must not fence a datacentre).
const MAX_HOSTS: usize = 10_000;

/// Expand a hostrange pattern into host names, in order. A name without brackets is itself.
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("hostrange {pattern:?}: {why}");
    let mut out = vec![String::new()];
    let mut rest = pattern;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|i| open + i)
            .ok_or_else(|| bad("missing `]`"))?;
        let prefix = &rest[..open];
        if prefix.contains(']') {
            return Err(bad("`]` without `[`"));
        }
        let mut items = Vec::new();
        for part in rest[open + 1..close].split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let width = lo.len();
            let (a, b) = (
                lo.parse::<u64>()
                    .map_err(|_| bad("ranges are numbers, e.g. [001-100]"))?,
                hi.parse::<u64>()
                    .map_err(|_| bad("ranges are numbers, e.g. [001-100]"))?,
            );
            if a > b {
                return Err(bad("a range must go upwards"));
            }
            if (b - a) as usize >= MAX_HOSTS {
                return Err(bad("expands to too many hosts"));
            }
            items.extend((a..=b).map(|n| format!("{n:0width$}")));
        }
        let mut next = Vec::with_capacity(out.len() * items.len());
        for head in &out {
            for item in &items {
                next.push(format!("{head}{prefix}{item}"));
            }
        }
        if next.len() > MAX_HOSTS {
            return Err(bad("expands to too many hosts"));
        }
        out = next;
        rest = &rest[close + 1..];
    }
    if rest.contains(']') {
        return Err(bad("`]` without `[`"));
    }
    for name in &mut out {
        name.push_str(rest);
    }
    if out.iter().any(String::is_empty) {
        return Err(bad("empty host name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn ranges_and_lists() {
        assert_eq!(expand("node1").unwrap(), ["node1"]);
        assert_eq!(
            expand("node[001-003]").unwrap(),
            ["node001", "node002", "node003"]
        );
        assert_eq!(expand("foo[7,9-10]").unwrap(), ["foo7", "foo9", "foo10"]);
        assert_eq!(
            expand("r[1-2]n[1-2].x").unwrap(),
            ["r1n1.x", "r1n2.x", "r2n1.x", "r2n2.x"]
        );
        assert_eq!(expand("node[1-1000]").unwrap().len(), 1000);
    }

    #[test]
    fn bad_patterns() {
        for bad in [
            "node[1-",
            "node]1",
            "node[a-b]",
            "node[5-1]",
            "n[0-99999]",
            "[1-2]x]",
            "",
        ] {
            assert!(expand(bad).is_err(), "{bad:?}");
        }
    }
}
