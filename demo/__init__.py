"""The offline end-to-end demo (`python -m demo`, `wt5k-demo`): generated sounds -> the project's mirror of both
sites -> the real spiders -> curation -> training -> evaluation -> search. It sits on top of every stage."""
