"""The tables on storage: the feature table, the label table, FMA's features.csv, their readers."""
