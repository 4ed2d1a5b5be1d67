"""Genre timelines of songs: per-window predictions and the pages that play them."""
