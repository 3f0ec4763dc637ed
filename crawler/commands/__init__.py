"""Project commands: `scrapy crawl` with an exit status that reflects the crawl."""
