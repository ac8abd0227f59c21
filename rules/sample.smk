# Generated demo imagery (the embedded default; the imagery is synthetic, see README).
if config["sample"]["enabled"]:

    rule sample_imagery:
        output:
            catalog=config["provider"]["catalog"],
        params:
            year=config["sample"]["year"],
            dates_per_year=config["sample"]["dates_per_year"],
        log:
            "results/logs/sample_imagery.log",
        conda:
            "../envs/core.yaml"
        script:
            "../scripts/sample_imagery.py"
