"""数据归集 the upward feed: ratings for the province, as an export (`hall-hub export ratings`) and
pushed to `[feed] url` (`hall-hub run`, `hall-hub feed push`). README "Upward feed (数据归集)"."""
