"""IPA: interaction chunks (order to order), chunk-level returns, ratios, masks and losses."""
