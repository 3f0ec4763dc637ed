"""The generator of the offline ZOL site (pages, images, ground truth) that the default crawl reads.

`mirror` (the command and the `sample` params) writes the site that `plan` draws from one seed (`text` its
review texts, `era2026` the products shown in 2026 markup); `manifest` holds its ground truth and scripted
answers; the HTML comes from `page_frame` (shared parts), `catalog_pages` (ranking, product overview),
`pages2018` and `pages2026` (each era's review pages); `images` renders the photos.
"""
