"""searchd: the search daemon (Flask app served by waitress) and the page in web/."""
