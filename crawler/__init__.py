"""Scrapy project that crawls ZOL mobile-phone reviews with their images (see docs/zol-site.md)."""
