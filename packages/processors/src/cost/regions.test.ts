import { describe, expect, it } from 'vitest';
import { continentOf, isRegionName, isZoneOf } from './regions.js';

describe('region → continent', () => {
  it.each([
    ['us-east-1', 'north_america'],
    ['us-gov-west-1', 'north_america'],
    ['ca-central-1', 'north_america'],
    ['mx-central-1', 'north_america'],
    ['sa-east-1', 'south_america'],
    ['eu-central-2', 'europe'],
    ['ap-southeast-2', 'oceania'],
    ['ap-southeast-4', 'oceania'],
    ['ap-southeast-1', 'asia'],
    ['ap-northeast-1', 'asia'],
    ['ap-south-2', 'asia'],
    ['cn-north-1', 'asia'],
    ['me-central-1', 'middle_east'],
    ['il-central-1', 'middle_east'],
    ['af-south-1', 'africa'],
  ] as const)('aws %s is in %s', (region, continent) => expect(continentOf('aws', region)).toBe(continent));

  it.each([
    ['us-central1', 'north_america'],
    ['northamerica-northeast2', 'north_america'],
    ['southamerica-east1', 'south_america'],
    ['europe-west4', 'europe'],
    ['asia-south1', 'asia'],
    ['australia-southeast1', 'oceania'],
    ['me-west1', 'middle_east'],
    ['africa-south1', 'africa'],
  ] as const)('gcp %s is in %s', (region, continent) => expect(continentOf('gcp', region)).toBe(continent));

  it.each([
    ['eastus', 'north_america'],
    ['eastus2', 'north_america'],
    ['westus3', 'north_america'],
    ['southcentralus', 'north_america'],
    ['canadacentral', 'north_america'],
    ['East US', 'north_america'],
    ['brazilsouth', 'south_america'],
    ['westeurope', 'europe'],
    ['northeurope', 'europe'],
    ['uksouth', 'europe'],
    ['germanywestcentral', 'europe'],
    ['swedencentral', 'europe'],
    ['japaneast', 'asia'],
    ['southeastasia', 'asia'],
    ['centralindia', 'asia'],
    ['koreacentral', 'asia'],
    ['australiaeast', 'oceania'],
    ['newzealandnorth', 'oceania'],
    ['uaenorth', 'middle_east'],
    ['qatarcentral', 'middle_east'],
    ['israelcentral', 'middle_east'],
    ['southafricanorth', 'africa'],
  ] as const)('azure %s is in %s', (region, continent) =>
    expect(continentOf('azure', region)).toBe(continent),
  );

  it('unknown or absent names are undefined', () => {
    expect(continentOf('aws', 'eastus')).toBeUndefined();
    expect(continentOf('gcp', 'us-east-1a-nope') === 'north_america').toBe(true); // prefix rule: still NA
    expect(continentOf('azure', 'us-east-1')).toBeUndefined();
    expect(continentOf('aws', undefined)).toBeUndefined();
    expect(continentOf('aws', '')).toBeUndefined();
  });
});

describe('region and zone names, as the config checks them', () => {
  it.each([
    ['aws', 'us-east-1', true],
    ['aws', 'us-gov-west-1', true],
    ['aws', 'ap-southeast-4', true],
    ['aws', 'il-central-1', true],
    ['aws', 'US-EAST-1', true],
    ['aws', 'us-east-1a', false], // a zone
    ['aws', 'us-east1', false], // GCP's shape
    ['aws', 'eastus', false],
    ['aws', 'xx-east-1', false], // the shape, but no continent we know
    ['gcp', 'us-central1', true],
    ['gcp', 'northamerica-northeast2', true],
    ['gcp', 'europe-west4', true],
    ['gcp', 'us-central1-a', false],
    ['gcp', 'us-east-1', false],
    ['azure', 'eastus', true],
    ['azure', 'East US 2', true],
    ['azure', 'westeurope', true],
    ['azure', 'us-east-1', false],
  ] as const)('%s %s is a region: %s', (provider, name, expected) => {
    expect(isRegionName(provider, name)).toBe(expected);
  });

  it.each([
    ['aws', 'us-east-1a', 'us-east-1', true],
    ['aws', 'us-west-2-lax-1a', 'us-west-2', true], // a Local Zone
    ['aws', 'us-east-1', 'us-east-1', false],
    ['aws', 'us-east-10a', 'us-east-1', false],
    ['aws', 'us-west-2a', 'us-east-1', false],
    ['gcp', 'us-central1-a', 'us-central1', true],
    ['gcp', 'us-central1a', 'us-central1', false],
    ['gcp', 'us-central1-', 'us-central1', false],
    ['azure', 'eastus-1', 'eastus', true],
    ['azure', '2', 'eastus', true],
    ['azure', '0', 'eastus', true], // not zonal
    ['azure', 'eastus2-1', 'eastus', false],
    ['azure', 'westeurope-1', 'eastus', false],
  ] as const)('%s %s is a zone of %s: %s', (provider, zone, region, expected) => {
    expect(isZoneOf(provider, zone, region)).toBe(expected);
  });
});
