"""The kata machinery: manifest, implementation switch, ladder report, budgets, stubs, scoreboard."""
