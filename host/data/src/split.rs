//! Deterministic train/test splits of one table's rows.

/// Deterministic shuffled split. With strata, each stratum contributes its
/// own share of test rows. Returns (train, test) row indices in file order.
pub fn split_rows(
    rows: usize,
    test_fraction: f64,
    seed: u64,
    strata: Option<&[Option<String>]>,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = crate::generate::Rng(seed);
    let mut next = move || rng.next_u64();
    let mut groups: std::collections::BTreeMap<Option<&str>, Vec<usize>> = Default::default();
    for r in 0..rows {
        let key = strata.and_then(|s| s.get(r)).and_then(|s| s.as_deref());
        groups.entry(key).or_default().push(r);
    }
    let mut test = Vec::new();
    for members in groups.values_mut() {
        for i in (1..members.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        let take = ((members.len() as f64) * test_fraction).round() as usize;
        test.extend_from_slice(&members[..take.min(members.len())]);
    }
    test.sort_unstable();
    let train = (0..rows)
        .filter(|r| test.binary_search(r).is_err())
        .collect();
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::split_rows;

    #[test]
    fn split_is_deterministic_stratified_and_complete() {
        let strata: Vec<Option<String>> = (0..100)
            .map(|i| Some(if i < 80 { "a" } else { "b" }.to_string()))
            .collect();
        let (train, test) = split_rows(100, 0.25, 7, Some(&strata));
        assert_eq!(test.len(), 25);
        assert_eq!(test.iter().filter(|r| **r >= 80).count(), 5);
        assert_eq!(train.len() + test.len(), 100);
        assert_eq!(split_rows(100, 0.25, 7, Some(&strata)), (train, test));
    }
}
