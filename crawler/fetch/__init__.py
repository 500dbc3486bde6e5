"""Everything the toolkit fetches outside the Scrapy crawl: the paper's other datasets (``wt5k-fetch clotho``,
``wt5k-fetch audiocaps``) and pretrained weights (``wt5k-weights``), through one resumable, checked download
(``download.py``). Training and curation read what lands on disk; they never import this package."""
