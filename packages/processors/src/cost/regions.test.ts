import { describe, expect, it } from 'vitest';
import { continentOf } from './regions.js';

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
