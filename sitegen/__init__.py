"""The generator of the offline ZOL site (pages, images, ground truth) that the default crawl reads."""
